// The emulated MPS's device guard, with the surface of torch's own MPSGuardImpl at the version
// built against (aten/src/ATen/mps/MPSGuardImpl.h, which Debian's Linux torch ships): one device,
// mps:0; one stream, the default one; events; no stream synchronize or query (MPSGuardImpl never
// declares them, so the base class's "Backend doesn't support ..." errors answer). Which event
// functions exist is read off MPSGuardImpl's declarations, not from a version table.
#include "../../standin/csrc/config.h"
#include "../../standin/csrc/device.h"
#include "../../standin/csrc/events.h"
#include "../../standin/csrc/stream.h"

#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <c10/util/Exception.h>

#include <cstdlib>
#include <cstring>


namespace torchdevice::standin {
namespace {

using Base = c10::impl::DeviceGuardImplInterface;

#ifdef TORCHDEVICE_MPS_GUARD_SYNCHRONIZES_EVENTS
constexpr bool kSynchronizesEvents = true;
#else
constexpr bool kSynchronizesEvents = false;
#endif
#ifdef TORCHDEVICE_MPS_GUARD_TIMES_EVENTS
constexpr bool kTimesEvents = true;
#else
constexpr bool kTimesEvents = false;
#endif

const c10::Device kDevice(c10::DeviceType::MPS, 0);

// TORCHDEVICE_MPS_GUARD=2.5: the event surface of torch 2.4-2.5's MPSGuardImpl, which records
// and queries events but declares neither synchronizeEvent nor elapsedTime (so the base class
// refuses both). Debian ships no torch of those releases; their guard is the one difference
// that matters for events, so it is emulated on a newer one.
bool guard_of_2_5() {
  static const bool value = [] {
    const char* version = std::getenv("TORCHDEVICE_MPS_GUARD");
    if (version == nullptr || *version == '\0') {
      return false;
    }
    TORCH_CHECK(std::strcmp(version, "2.5") == 0, "TORCHDEVICE_MPS_GUARD must be 2.5 (or unset), got '",
                version, "'");
    return true;
  }();
  return value;
}

c10::Stream default_stream() { return c10::Stream(c10::Stream::DEFAULT, kDevice); }

class Guard final : public Base {
 public:
  c10::DeviceType type() const override { return c10::DeviceType::MPS; }
  c10::Device exchangeDevice(c10::Device /*device*/) const override { return kDevice; }
  c10::Device getDevice() const override { return kDevice; }
  void setDevice(c10::Device device) const override {
    TORCH_CHECK(device.is_mps(), "Expected a MPS device, but got ", device);
  }
  void uncheckedSetDevice(c10::Device /*device*/) const noexcept override {}
  c10::Stream getStream(c10::Device /*device*/) const noexcept override { return default_stream(); }
  c10::Stream getNewStream(c10::Device /*device*/, int /*priority*/) const override {
    return default_stream();
  }
  c10::Stream getDefaultStream(c10::Device /*device*/) const override { return default_stream(); }
  c10::Stream exchangeStream(c10::Stream /*stream*/) const noexcept override {
    return default_stream();
  }
  c10::DeviceIndex deviceCount() const noexcept override { return 1; }

  void destroyEvent(void* event, const c10::DeviceIndex /*device_index*/) const noexcept override {
    destroy_event(event);
  }
  void record(void** event, const c10::Stream& /*stream*/, const c10::DeviceIndex /*device_index*/,
              const c10::EventFlag flag) const override {
    record_event(event, default_stream(), flag);
  }
  void block(void* event, const c10::Stream& /*stream*/) const override {
    block_on_event(event, default_stream());
  }
  bool queryEvent(void* event) const override { return query_event(event); }
  void synchronizeEvent(void* event) const override {
    if constexpr (kSynchronizesEvents) {
      if (!guard_of_2_5()) {
        synchronize_event(event);
        return;
      }
    }
    Base::synchronizeEvent(event);
  }
  double elapsedTime(void* start, void* end, const c10::DeviceIndex device_index) const override {
    if constexpr (kTimesEvents) {
      if (!guard_of_2_5()) {
        return elapsed_ms(start, end);
      }
    }
    return Base::elapsedTime(start, end, device_index);
  }
  void synchronizeDevice(const c10::DeviceIndex /*device_index*/) const override {
    synchronize_device(0);
  }
};

} // namespace

C10_REGISTER_GUARD_IMPL(MPS, Guard);

} // namespace torchdevice::standin
