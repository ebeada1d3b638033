// The stand-in's DeviceGuardImplInterface: current device and stream per thread, streams that run
// later (stream.h), and events that mark a point in a stream and complete when the stream gets there
// (events.h).
#include "config.h"
#include "events.h"
#include "stream.h"

#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <c10/util/Exception.h>

namespace torchdevice::standin {
namespace {

class Guard final : public c10::impl::DeviceGuardImplInterface {
 public:
  c10::DeviceType type() const override { return c10::DeviceType::PrivateUse1; }

  c10::Device exchangeDevice(c10::Device device) const override {
    const c10::Device previous = getDevice();
    setDevice(device);
    return previous;
  }

  c10::Device getDevice() const override {
    return {c10::DeviceType::PrivateUse1, current_device()};
  }

  void setDevice(c10::Device device) const override {
    TORCH_INTERNAL_ASSERT(device.type() == c10::DeviceType::PrivateUse1);
    if (device.has_index()) {
      set_current_device(device.index());
    }
  }

  void uncheckedSetDevice(c10::Device device) const noexcept override {
    if (device.has_index() && device.index() >= 0 && device.index() < device_count()) {
      set_current_device(device.index());
    }
  }

  c10::Stream getStream(c10::Device device) const noexcept override {
    return current_stream(device.index());
  }

  c10::Stream getDefaultStream(c10::Device device) const override {
    return c10::Stream(c10::Stream::DEFAULT, device);
  }

  c10::Stream getStreamFromGlobalPool(c10::Device device, bool /*isHighPriority*/) const override {
    return stream_from_pool(device.index());
  }

  c10::Stream getNewStream(c10::Device device, int /*priority*/) const override {
    return new_stream(device.index());
  }

  c10::Stream exchangeStream(c10::Stream stream) const noexcept override {
    return exchange_stream(stream);
  }

  void destroyEvent(void* event, const c10::DeviceIndex /*device_index*/) const noexcept override {
    destroy_event(event);
  }

  void record(void** event, const c10::Stream& stream, const c10::DeviceIndex device_index,
              const c10::EventFlag flag) const override {
    TORCH_CHECK(device_index == -1 || device_index == stream.device_index(),
                "Event device index ", static_cast<int>(device_index),
                " does not match recording stream's device index ",
                static_cast<int>(stream.device_index()), ".");
    record_event(event, stream, flag);
  }

  void block(void* event, const c10::Stream& stream) const override {
    block_on_event(event, stream);
  }

  bool queryEvent(void* event) const override { return query_event(event); }

  c10::DeviceIndex deviceCount() const noexcept override { return device_count(); }

  bool queryStream(const c10::Stream& stream) const override { return query_stream(stream); }

  void synchronizeStream(const c10::Stream& stream) const override { synchronize_stream(stream); }

  void synchronizeEvent(void* event) const override { synchronize_event(event); }

  void synchronizeDevice(const c10::DeviceIndex device_index) const override {
    synchronize_device(device_index);
  }

  double elapsedTime(void* start, void* end, const c10::DeviceIndex /*device_index*/) const override {
    return elapsed_ms(start, end);
  }
};

} // namespace

C10_REGISTER_GUARD_IMPL(PrivateUse1, Guard);

} // namespace torchdevice::standin
