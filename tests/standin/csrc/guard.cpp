// The stand-in's DeviceGuardImplInterface: current device and stream per thread, streams that run
// later (stream.h), and events that mark a point in a stream and complete when the stream gets there.
#include "config.h"
#include "stream.h"

#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <c10/util/Exception.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>

namespace torchdevice::standin {
namespace {

using Clock = std::chrono::steady_clock;

// One event: each record() bumps `recorded`; the stream's worker sets `completed` to that
// version (and takes the time) when it reaches the record.
struct EventState {
  std::mutex mutex;
  std::condition_variable changed;
  uint64_t recorded = 0;
  uint64_t completed = 0;
  Clock::time_point when;
  bool timing = false;
};

// torch hands the guard a void** slot; the slot owns a shared_ptr so that a record still queued on
// a stream keeps the state alive after the event is destroyed.
using EventHandle = std::shared_ptr<EventState>;

EventState& state_of(void* event) { return **static_cast<EventHandle*>(event); }

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
    delete static_cast<EventHandle*>(event);
  }

  void record(void** event, const c10::Stream& stream, const c10::DeviceIndex device_index,
              const c10::EventFlag flag) const override {
    TORCH_CHECK(device_index == -1 || device_index == stream.device_index(),
                "Event device index ", static_cast<int>(device_index),
                " does not match recording stream's device index ",
                static_cast<int>(stream.device_index()), ".");
    if (*event == nullptr) {
      auto* handle = new EventHandle(std::make_shared<EventState>());
      (*handle)->timing = flag == c10::EventFlag::BACKEND_DEFAULT;
      *event = handle;
    }
    EventHandle state = *static_cast<EventHandle*>(*event);
    uint64_t version = 0;
    {
      std::lock_guard<std::mutex> lock(state->mutex);
      version = ++state->recorded;
    }
    enqueue(stream, [state, version] {
      const Clock::time_point now = Clock::now();
      std::lock_guard<std::mutex> lock(state->mutex);
      if (version > state->completed) {
        state->completed = version;
        state->when = now;
      }
      state->changed.notify_all();
    });
  }

  void block(void* event, const c10::Stream& stream) const override {
    if (event == nullptr) {
      return;  // never recorded: nothing to wait for
    }
    EventHandle state = *static_cast<EventHandle*>(event);
    uint64_t version = 0;
    {
      std::lock_guard<std::mutex> lock(state->mutex);
      version = state->recorded;
    }
    enqueue(stream, [state, version] {
      std::unique_lock<std::mutex> lock(state->mutex);
      state->changed.wait(lock, [&] { return state->completed >= version; });
    });
  }

  bool queryEvent(void* event) const override {
    if (event == nullptr) {
      return true;
    }
    EventState& state = state_of(event);
    std::lock_guard<std::mutex> lock(state.mutex);
    return state.completed >= state.recorded;
  }

  c10::DeviceIndex deviceCount() const noexcept override { return device_count(); }

  bool queryStream(const c10::Stream& stream) const override { return query_stream(stream); }

  void synchronizeStream(const c10::Stream& stream) const override { synchronize_stream(stream); }

  void synchronizeEvent(void* event) const override {
    if (event == nullptr) {
      return;
    }
    EventState& state = state_of(event);
    std::unique_lock<std::mutex> lock(state.mutex);
    const uint64_t version = state.recorded;
    state.changed.wait(lock, [&] { return state.completed >= version; });
  }

  void synchronizeDevice(const c10::DeviceIndex device_index) const override {
    synchronize_device(device_index);
  }

  double elapsedTime(void* start, void* end, const c10::DeviceIndex /*device_index*/) const override {
    TORCH_CHECK(start != nullptr && end != nullptr,
                "Both events must be recorded before calculating elapsed time.");
    EventState& first = state_of(start);
    EventState& second = state_of(end);
    Clock::time_point begin;
    Clock::time_point finish;
    {
      std::lock_guard<std::mutex> lock(first.mutex);
      TORCH_CHECK(first.timing, "Both events must be created with argument 'enable_timing=True'.");
      TORCH_CHECK(first.completed == first.recorded && first.completed > 0,
                  "Both events must be completed before calculating elapsed time.");
      begin = first.when;
    }
    {
      std::lock_guard<std::mutex> lock(second.mutex);
      TORCH_CHECK(second.timing, "Both events must be created with argument 'enable_timing=True'.");
      TORCH_CHECK(second.completed == second.recorded && second.completed > 0,
                  "Both events must be completed before calculating elapsed time.");
      finish = second.when;
    }
    return std::chrono::duration<double, std::milli>(finish - begin).count();
  }
};

} // namespace

C10_REGISTER_GUARD_IMPL(PrivateUse1, Guard);

} // namespace torchdevice::standin
