#include "torchdevice/target_device.h"

#include <ATen/Context.h>
#include <ATen/autocast_mode.h>
#include <c10/core/Event.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <c10/core/impl/VirtualGuardImpl.h>
#include <torch/version.h>
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 6)
#include <ATen/detail/MPSHooksInterface.h>  // its macOS query
#endif
#if TORCHDEVICE_HAS_DEVICE_ALLOCATOR  // tested by cmake/torch_features.cmake
#include <c10/core/CachingDeviceAllocator.h>
#endif

#include "torchdevice/event.h"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>

namespace torchdevice::target_device {

namespace {

// Feature tests rather than version numbers: guards learnt to synchronize a device, and events
// to synchronize and time themselves, during torch 2.
template <class Guard, class = void>
struct GuardSynchronizes : std::false_type {};
template <class Guard>
struct GuardSynchronizes<Guard, std::void_t<decltype(std::declval<const Guard&>().synchronizeDevice(
                                    c10::DeviceIndex{0}))>> : std::true_type {};

template <class Guard, class = void>
struct GuardSynchronizesStreams : std::false_type {};
template <class Guard>
struct GuardSynchronizesStreams<Guard, std::void_t<decltype(std::declval<const Guard&>().synchronizeStream(
                                           std::declval<const c10::Stream&>()))>>
    : std::true_type {};

template <class E, class = void>
struct EventTimes : std::false_type {};
template <class E>
struct EventTimes<E, std::void_t<decltype(std::declval<const E&>().elapsedTime(
                                     std::declval<const E&>())),
                                 decltype(std::declval<const E&>().synchronize())>>
    : std::true_type {};

const c10::impl::DeviceGuardImplInterface* guard_for(c10::Device device) {
  if (device.is_cpu() || !c10::impl::hasDeviceGuardImpl(device.type())) {
    return nullptr;
  }
  return c10::impl::getDeviceGuardImpl(device.type());
}

#if TORCHDEVICE_HAS_DEVICE_ALLOCATOR
// The target's allocator as a DeviceAllocator, or nullptr where it is another kind.
c10::DeviceAllocator* device_allocator(c10::Device device) {
  if (device.is_cpu()) {
    return nullptr;
  }
  auto* allocator = c10::GetAllocator(device.type());
  return allocator == nullptr ? nullptr : dynamic_cast<c10::DeviceAllocator*>(allocator);
}
#endif

// The CPU, and targets whose guard has no timed events: work is complete (or was waited for)
// when record() returns, so a host timestamp then is the event's time.
class HostTimedEvent final : public Event {
 public:
  HostTimedEvent(c10::Device device, bool enable_timing)
      : device_(device), event_(enable_timing) {}
  void record() override {
    synchronize();
    event_.record();
  }
  bool query() const override { return true; }
  void synchronize() const override { target_device::synchronize(device_); }
  bool recorded() const override { return event_.recorded(); }
  double elapsed_ms(const Event& end) const override {
    const auto* other = dynamic_cast<const HostTimedEvent*>(&end);
    TORCH_CHECK(other != nullptr, "Both events must be of the same device to compare times.");
    return event_.elapsed_ms(other->event_);
  }

 private:
  c10::Device device_;
  HostEvent event_;
};

// The backend's own event, recorded on the device's current stream: record() does not wait.
template <class E>
class GuardEvent final : public Event {
 public:
  GuardEvent(c10::Device device, bool enable_timing)
      : device_(device),
        enable_timing_(enable_timing),
        event_(device.type(), enable_timing ? c10::EventFlag::BACKEND_DEFAULT
                                            : c10::EventFlag::PYTORCH_DEFAULT) {}
  void record() override {
    event_.record(c10::impl::VirtualGuardImpl(device_.type()).getStream(device_));
    recorded_ = true;
  }
  bool query() const override { return event_.query(); }
  void synchronize() const override { event_.synchronize(); }
  bool recorded() const override { return recorded_; }
  double elapsed_ms(const Event& end) const override {
    const auto* other = dynamic_cast<const GuardEvent*>(&end);
    TORCH_CHECK(other != nullptr, "Both events must be of the same device to compare times.");
    TORCH_CHECK(enable_timing_ && other->enable_timing_,
                "Both events must be created with argument 'enable_timing=True'.");
    TORCH_CHECK(recorded_ && other->recorded_,
                "Both events must be recorded before calculating elapsed time.");
    return event_.elapsedTime(other->event_);
  }

 private:
  c10::Device device_;
  bool enable_timing_;
  bool recorded_ = false;
  E event_;
};

// Calls `use` with the target's allocator where it is a DeviceAllocator; false where it is not.
template <class Use>
bool with_device_allocator(c10::Device device, Use&& use) {
#if TORCHDEVICE_HAS_DEVICE_ALLOCATOR
  if (auto* allocator = device_allocator(device)) {
    use(*allocator);
    return true;
  }
#endif
  (void)device;
  (void)use;
  return false;
}

// Templates, so that what this torch lacks is never instantiated.
template <class Guard>
bool synchronize_with(const Guard* guard, c10::DeviceIndex index) {
  if constexpr (GuardSynchronizes<Guard>::value) {
    guard->synchronizeDevice(index);
    return true;
  } else {
    return false;
  }
}

template <class Guard>
bool synchronize_stream_with(const Guard* guard, const c10::Stream& stream) {
  if constexpr (GuardSynchronizesStreams<Guard>::value) {
    guard->synchronizeStream(stream);
    return true;
  } else {
    return false;
  }
}

// Whether `ask` succeeds on a device type, learnt once per type and kept (0: not asked yet,
// 1: yes, 2: no): a backend refuses what it lacks with a c10::Error. Each caller keeps its own
// answers.
using Answers = std::atomic<uint8_t>[c10::COMPILE_TIME_MAX_DEVICE_TYPES];
template <class Ask>
bool learnt_once(Answers& answers, c10::DeviceType type, Ask&& ask) {
  auto& answer = answers[static_cast<size_t>(type)];
  uint8_t known = answer.load(std::memory_order_relaxed);
  if (known == 0) {
    try {
      ask();
      known = 1;
    } catch (const c10::Error&) {
      known = 2;
    }
    answer.store(known, std::memory_order_relaxed);
  }
  return known == 1;
}

// Whether a device type's guard records events, by recording one: a guard without events (the
// CPU's, a no-op one) refuses. Asked at every Event() and Stream.query().
template <class E>
bool records_events(c10::Device device) {
  static Answers answers;
  return learnt_once(answers, device.type(), [&] {
    E probe(device.type(), c10::EventFlag::PYTORCH_DEFAULT);
    probe.record(c10::impl::VirtualGuardImpl(device.type()).getStream(device));
  });
}

// Whether a device type's guard also synchronizes and times its events: torch 2.4-2.5's
// MPSGuardImpl records events but leaves both to the base class, which refuses (torch's own
// Event.elapsed_time() raises there). Asked only of a guard that records.
template <class E>
bool times_events(c10::Device device) {
  static Answers answers;
  return learnt_once(answers, device.type(), [&] {
    const auto stream = c10::impl::VirtualGuardImpl(device.type()).getStream(device);
    E start(device.type(), c10::EventFlag::BACKEND_DEFAULT);
    E end(device.type(), c10::EventFlag::BACKEND_DEFAULT);
    start.record(stream);
    end.record(stream);
    end.synchronize();
    start.elapsedTime(end);
  });
}

// The device's own event, where its guard records, synchronizes and times events (`timed`) or
// at least records and queries them; nullptr otherwise.
template <class E>
std::unique_ptr<Event> device_event(c10::Device device, bool enable_timing, bool timed) {
  if constexpr (EventTimes<E>::value) {
    if (!records_events<E>(device) || (timed && !times_events<E>(device))) {
      return nullptr;
    }
    return std::make_unique<GuardEvent<E>>(device, enable_timing);
  } else {
    return nullptr;
  }
}

constexpr bool torch_at_least(int major, int minor) {
  return TORCH_VERSION_MAJOR > major ||
         (TORCH_VERSION_MAJOR == major && TORCH_VERSION_MINOR >= minor);
}

bool has_autocast(c10::DeviceType type) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  return at::autocast::is_autocast_available(type);
#else
  // The types the autocast class of torch 1.13 (CPU, CUDA, XPU) and 2.0-2.3 (also IPU, HPU, XLA,
  // PrivateUse1) accepts.
  switch (type) {
    case c10::DeviceType::CPU:
    case c10::DeviceType::CUDA:
    case c10::DeviceType::XPU:
      return true;
    case c10::DeviceType::IPU:
    case c10::DeviceType::HPU:
    case c10::DeviceType::XLA:
    case c10::DeviceType::PrivateUse1:
      return TORCH_VERSION_MAJOR >= 2;
    default:
      return false;
  }
#endif
}

}  // namespace

bool synchronize(c10::Device device) {
  if (device.is_cpu()) {
    return true;  // CPU work is complete when the op returns
  }
  const auto* guard = guard_for(device);
  return guard != nullptr && synchronize_with(guard, device.index());
}

bool query(c10::Device device) {
  const auto* guard = guard_for(device);
  if (guard == nullptr) {
    return true;
  }
  try {
    return guard->queryStream(guard->getStream(device));
  } catch (const c10::Error&) {
    // A backend whose guard cannot query streams (MPS): an event recorded now tells the same,
    // once the device has reached it. An idle device reaches it at once, but not within the
    // call: it is given a moment (what an idle GPU takes to signal), so an idle device answers
    // true and a busy one false, without waiting for its work.
    auto now = device_event<c10::Event>(device, false, /*timed=*/false);
    if (now == nullptr) {
      now = make_event(device, false);  // a host event: recording it waits for the device
    }
    now->record();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(500);
    while (!now->query()) {
      if (std::chrono::steady_clock::now() > deadline) {
        return false;
      }
      std::this_thread::yield();
    }
    return true;
  }
}

c10::optional<MemoryStats> allocator_stats(c10::Device device) {
#if TORCHDEVICE_HAS_DEVICE_ALLOCATOR
  if (auto* allocator = device_allocator(device)) {
    const auto stats = allocator->getDeviceStats(device.index());
    constexpr auto all = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
    MemoryStats out;
    out.allocated_bytes = stats.allocated_bytes[all].current;
    out.peak_allocated_bytes = stats.allocated_bytes[all].peak;
    out.total_allocated_bytes = stats.allocated_bytes[all].allocated;
    out.total_freed_bytes = stats.allocated_bytes[all].freed;
    out.reserved_bytes = stats.reserved_bytes[all].current;
    out.peak_reserved_bytes = stats.reserved_bytes[all].peak;
    out.allocations = stats.allocation[all].current;
    out.peak_allocations = stats.allocation[all].peak;
    out.total_allocations = stats.allocation[all].allocated;
    out.total_frees = stats.allocation[all].freed;
    out.num_ooms = stats.num_ooms;
    return out;
  }
#endif
  (void)device;
  return c10::nullopt;
}

bool reset_peak(c10::Device device) {
  return with_device_allocator(device, [&](auto& allocator) {
    allocator.resetPeakStats(device.index());
  });
}

bool reset_accumulated(c10::Device device) {
  return with_device_allocator(device, [&](auto& allocator) {
    allocator.resetAccumulatedStats(device.index());
  });
}

bool empty_cache(c10::Device device) {
  return with_device_allocator(device, [](auto& allocator) { allocator.emptyCache(); });
}

bool has_device_events(c10::Device device) {
  return guard_for(device) != nullptr &&
         device_event<c10::Event>(device, false, /*timed=*/true) != nullptr;
}

std::unique_ptr<Event> make_event(c10::Device device, bool enable_timing) {
  if (guard_for(device) != nullptr) {
    if (auto event = device_event<c10::Event>(device, enable_timing, /*timed=*/true)) {
      return event;
    }
  }
  return std::make_unique<HostTimedEvent>(device, enable_timing);
}

c10::optional<std::vector<c10::ScalarType>> autocast_dtypes(c10::DeviceType type) {
  using c10::ScalarType;
  if (!has_autocast(type)) {
    return std::vector<ScalarType>{};
  }
  switch (type) {
    case c10::DeviceType::PrivateUse1:
      return c10::nullopt;
    case c10::DeviceType::CPU:
      // torch 1.x CPU autocast is bfloat16-only; float16 joined in 2.1.
      if (torch_at_least(2, 1)) {
        return std::vector<ScalarType>{ScalarType::BFloat16, ScalarType::Half};
      }
      return std::vector<ScalarType>{ScalarType::BFloat16};
    case c10::DeviceType::MPS: {
      // torch has no query for these: 2.5 autocasts float16 only; 2.6 added bfloat16, which
      // Metal has from macOS 14.
      std::vector<ScalarType> dtypes{ScalarType::Half};
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 6)
      const auto& hooks = at::detail::getMPSHooks();
      if (hooks.hasMPS() && hooks.isOnMacOSorNewer(14, 0)) {
        dtypes.push_back(ScalarType::BFloat16);
      }
#endif
      return dtypes;
    }
    default:
      return std::vector<ScalarType>{ScalarType::Half, ScalarType::BFloat16};
  }
}

bool has_pinned_memory(c10::DeviceType type) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 6)
  if (type == c10::DeviceType::CPU) {
    return false;
  }
  try {
    // Pinned memory is host memory: torch's pin_memory() puts it under a CPU tensor. An
    // allocator whose blocks say they are on the device (MPS's before 2026: "Attempted to set
    // the storage of a tensor on device cpu to a storage on different device mps:0") cannot
    // serve it, so the target counts as one without.
    auto* allocator = at::globalContext().getPinnedMemoryAllocator(type);
    return allocator != nullptr && allocator->allocate(1).device().is_cpu();
  } catch (const c10::Error&) {
    return false;  // the backend's hooks refuse (MPS before its pinned allocator, no hooks)
  }
#else
  (void)type;
  return false;
#endif
}

bool may_defer_pageable_copies(c10::Device device) {
  return !device.is_cpu() && !device.is_cuda();
}

bool synchronize_current_stream(c10::Device device) {
  const auto* guard = guard_for(device);
  if (guard == nullptr) {
    return device.is_cpu();  // the CPU's work is done when submitted
  }
  // Whether the guard synchronizes streams, learnt at the first call per type (0: not asked yet,
  // 1: yes, 2: no): the interface declares it for every backend, and MPS's guard does not
  // implement it (the base class throws), so only a call can tell. A backend without it has
  // one stream (MPS), whose synchronization is the device's.
  static std::atomic<uint8_t> answers[c10::COMPILE_TIME_MAX_DEVICE_TYPES];
  auto& answer = answers[static_cast<size_t>(device.type())];
  if (answer.load(std::memory_order_relaxed) != 2) {
    try {
      const bool done = synchronize_stream_with(guard, guard->getStream(device));
      answer.store(1, std::memory_order_relaxed);
      if (done) {
        return true;
      }
    } catch (const c10::Error&) {
      if (answer.load(std::memory_order_relaxed) == 1) {
        throw;  // the stream's own failure, not a missing implementation
      }
      answer.store(2, std::memory_order_relaxed);
    }
  }
  return synchronize_with(guard, device.index());
}

bool is_out_of_memory(const c10::Error& error) {
  if (dynamic_cast<const c10::OutOfMemoryError*>(&error) != nullptr) {
    return true;
  }
  const std::string& message = error.msg();
  return (message.find("DefaultCPUAllocator") != std::string::npos &&
          (message.find("not enough memory") != std::string::npos ||
           message.find("can't allocate memory") != std::string::npos)) ||
         message.find("out of memory") != std::string::npos ||
         // MPS's refusal of one buffer larger than the device can map (MPSAllocator.mm), where
         // CUDA would say it is out of memory.
         message.find("Invalid buffer size") != std::string::npos;
}

}  // namespace torchdevice::target_device
