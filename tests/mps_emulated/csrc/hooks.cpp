// The emulated MPS's hooks: what torch asks MPS through at::MPSHooksInterface (torch.mps.*,
// torch.backends.mps.is_available(), at::hasMPS(), pinned memory, generators), registered in
// torch's MPSHooksRegistry when this library loads — before anything in the process has asked for
// MPS's hooks, which torch creates once (at::detail::getMPSHooks). Answers follow torch's
// MPSHooks (aten/src/ATen/mps/MPSHooks.mm) at the version built against.
#include "../../standin/csrc/allocator.h"
#include "../../standin/csrc/config.h"
#include "../../standin/csrc/device.h"
#include "../../standin/csrc/events.h"
#include "../../standin/csrc/hooks.h"
#include "../../standin/csrc/stream.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/detail/MPSHooksInterface.h>
#include <c10/util/Exception.h>
#include <torch/version.h>

#include <map>
#include <mutex>
#include <utility>

namespace torchdevice::standin {
namespace {

// Since 2026 (tests/mps_emulated/CMakeLists.txt reads which torch has it) MPS's pinned memory is
// tagged as CPU memory; before, its pinned allocator handed out storages tagged mps:0, on which
// torch's own pin_memory() fails ("Attempted to set the storage of a tensor on device cpu to a
// storage on different device mps:0").
#ifdef TORCHDEVICE_MPS_PINNED_AS_CPU
constexpr bool kPinnedTaggedAsCpu = true;
#else
constexpr bool kPinnedTaggedAsCpu = false;
#endif

class Generator final : public at::CPUGeneratorImpl {
 public:
  Generator() {
    device_ = c10::Device(c10::DeviceType::MPS, 0);
    key_set_ = c10::DispatchKeySet(c10::DispatchKey::MPS);
  }
};

// MPS's pinned memory: host memory the device reads directly; tagged with the device where this
// torch's MPS tags it so (see kPinnedTaggedAsCpu).
class PinnedAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t size) override {
    c10::DataPtr data = pinned_allocator().allocate(size);
    if constexpr (!kPinnedTaggedAsCpu) {
      data.unsafe_set_device(c10::Device(c10::DeviceType::MPS, 0));
    }
    return data;
  }
  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }
};

// torch.mps.Event's ids (MPSEventPool in torch): each names a guard-style event slot.
class EventPool {
 public:
  uint32_t acquire(bool enable_timing) {
    std::lock_guard<std::mutex> lock(mutex_);
    const uint32_t id = ++last_;
    events_[id] = Entry{nullptr, enable_timing};
    return id;
  }
  void release(uint32_t id) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = events_.find(id);
    if (it != events_.end()) {
      destroy_event(it->second.slot);
      events_.erase(it);
    }
  }
  void record(uint32_t id) {
    auto [slot, timing] = find(id);
    record_event(slot, current_stream(0),
                 timing ? c10::EventFlag::BACKEND_DEFAULT : c10::EventFlag::PYTORCH_DEFAULT);
  }
  void* get(uint32_t id) { return *find(id).first; }

 private:
  struct Entry {
    void* slot;
    bool timing;
  };
  std::pair<void**, bool> find(uint32_t id) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = events_.find(id);
    TORCH_CHECK(it != events_.end(), "Event with id ", id, " not found");
    return {&it->second.slot, it->second.timing};
  }
  std::mutex mutex_;
  uint32_t last_ = 0;
  std::map<uint32_t, Entry> events_;  // std::map: a slot's address stays put while others come
};

EventPool& events() {
  static EventPool* pool = new EventPool;  // leaked: events may be released during teardown
  return *pool;
}

size_t aggregate(const c10::CachingDeviceAllocator::StatArray& stat) {
  return static_cast<size_t>(
      stat[static_cast<size_t>(c10::CachingDeviceAllocator::StatType::AGGREGATE)].current);
}

struct MPSHooks final : public at::MPSHooksInterface {
  explicit MPSHooks(at::MPSHooksArgs /*args*/ = {}) {}

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 7)
  bool isBuilt() const override { return true; }
  bool isAvailable() const override { return true; }
#endif
  void init() const override {}
  bool hasMPS() const override { return true; }
  bool isOnMacOSorNewer(unsigned major, unsigned minor) const override {
    const auto macos = static_cast<unsigned>(macos_version());
    return macos > major || (macos == major && minor == 0);
  }
  const at::Generator& getDefaultGenerator(c10::DeviceIndex /*device_index*/) const override {
    return default_generator(0);
  }
  at::Generator getNewGenerator(c10::DeviceIndex /*device_index*/) const override {
    return at::make_generator<Generator>();
  }
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 7)
  at::Allocator* getMPSDeviceAllocator() const override { return &device_allocator(); }
#endif
  void deviceSynchronize() const override { synchronize_device(0); }
  void commitStream() const override {}
  // Where torch's Python asks for Metal objects a Linux process cannot have.
  void* getCommandBuffer() const override {
    TORCH_CHECK(false, "the emulated MPS has no Metal command buffer");
  }
  void* getDispatchQueue() const override {
    TORCH_CHECK(false, "the emulated MPS has no Metal dispatch queue");
  }
  void emptyCache() const override {}  // nothing is cached: freed blocks go back to the host
  size_t getCurrentAllocatedMemory() const override {
    return aggregate(memory_stats(0).allocated_bytes);
  }
  size_t getDriverAllocatedMemory() const override {
    return aggregate(memory_stats(0).reserved_bytes);
  }
  size_t getRecommendedMaxMemory() const override { return memory_limit(0); }
  void setMemoryFraction(double ratio) const override {
    TORCH_CHECK(ratio >= 0 && ratio <= 2, "invalid fraction ", ratio, ": must be in [0, 2]");
    set_memory_limit(0, static_cast<size_t>(static_cast<double>(default_memory_limit()) * ratio));
  }
  void profilerStartTrace(const std::string& /*mode*/, bool /*waitUntilCompleted*/) const override {
    TORCH_CHECK(false, "the emulated MPS has no Metal profiler");
  }
  void profilerStopTrace() const override {
    TORCH_CHECK(false, "the emulated MPS has no Metal profiler");
  }
  uint32_t acquireEvent(bool enable_timing) const override {
    return events().acquire(enable_timing);
  }
  void releaseEvent(uint32_t event_id) const override { events().release(event_id); }
  void recordEvent(uint32_t event_id) const override { events().record(event_id); }
  void waitForEvent(uint32_t event_id) const override {
    block_on_event(events().get(event_id), current_stream(0));
  }
  void synchronizeEvent(uint32_t event_id) const override {
    synchronize_event(events().get(event_id));
  }
  bool queryEvent(uint32_t event_id) const override { return query_event(events().get(event_id)); }
  double elapsedTimeOfEvents(uint32_t start_event_id, uint32_t end_event_id) const override {
    return elapsed_ms(events().get(start_event_id), events().get(end_event_id));
  }
  at::Device getDeviceFromPtr(void* data) const override {
    TORCH_CHECK(device_of(data).has_value(), "MPS: ", data,
                " is not memory allocated by the emulated MPS");
    return {c10::DeviceType::MPS, 0};
  }
  bool hasPrimaryContext(c10::DeviceIndex /*device_index*/) const override { return true; }
  bool isPinnedPtr(const void* data) const override { return is_pinned(data); }
  at::Allocator* getPinnedMemoryAllocator() const override {
    static PinnedAllocator allocator;
    return &allocator;
  }
};

} // namespace

const at::Generator& default_generator(c10::DeviceIndex /*index*/) {
  static const at::Generator generator = at::make_generator<Generator>();
  return generator;
}

void register_hooks() {}  // below, when the library loads

} // namespace torchdevice::standin

namespace at {
// Under the name torch creates MPS's hooks by (at::detail::getMPSHooks).
C10_REGISTER_TYPED_CLASS(MPSHooksRegistry, "MPSHooks", torchdevice::standin::MPSHooks)
} // namespace at
