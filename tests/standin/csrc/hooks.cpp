#include "hooks.h"

#include "allocator.h"
#include "config.h"
#include "stream.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/GeneratorForPrivateuseone.h>
#include <ATen/detail/PrivateUse1HooksInterface.h>
#include <c10/util/Exception.h>
#include <torch/version.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <mutex>

namespace torchdevice::standin {
namespace {

// The CPU engine, state format and seeding, reporting the stand-in device: torch.Generator
// objects, manual_seed and get/set_rng_state work unchanged on it.
class Generator final : public at::CPUGeneratorImpl {
 public:
  explicit Generator(c10::DeviceIndex index) {
    device_ = c10::Device(c10::DeviceType::PrivateUse1, index);
    key_set_ = c10::DispatchKeySet(c10::DispatchKey::PrivateUse1);
  }
};

at::Generator make_generator(c10::DeviceIndex index) {
  const c10::DeviceIndex resolved = index == -1 ? current_device() : index;
  check_device_index(resolved);
  return at::make_generator<Generator>(resolved);
}

struct Hooks final : public at::PrivateUse1HooksInterface {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 7)
  bool isBuilt() const override { return true; }
  bool isAvailable() const override { return true; }
#endif

  bool hasPrimaryContext(c10::DeviceIndex /*device_index*/) const override { return true; }

  void init() const override {}

  c10::DeviceIndex deviceCount() const override { return device_count(); }

  void setCurrentDevice(c10::DeviceIndex device) const override { set_current_device(device); }

  c10::DeviceIndex getCurrentDevice() const override { return current_device(); }

  c10::DeviceIndex exchangeDevice(c10::DeviceIndex device) const override {
    const c10::DeviceIndex previous = current_device();
    set_current_device(device);
    return previous;
  }

  c10::DeviceIndex maybeExchangeDevice(c10::DeviceIndex device) const override {
    return exchangeDevice(device);
  }

  const at::Generator& getDefaultGenerator(c10::DeviceIndex device_index) const override {
    return default_generator(device_index == -1 ? current_device() : device_index);
  }

  at::Generator getNewGenerator(c10::DeviceIndex device_index) const override {
    return make_generator(device_index);
  }

  at::Device getDeviceFromPtr(void* data) const override {
    const auto index = device_of(data);
    TORCH_CHECK(index.has_value(), "standin: ", data,
                " is not memory allocated by the standin backend");
    return {c10::DeviceType::PrivateUse1, *index};
  }

  bool isPinnedPtr(const void* data) const override { return is_pinned(data); }

  at::Allocator* getPinnedMemoryAllocator() const override {
    return &pinned_allocator();
  }

  void resizePrivateUse1Bytes(const c10::Storage& storage, size_t size) const override {
    synchronize_device(storage.device().index());
    c10::StorageImpl* impl = storage.unsafeGetStorageImpl();
    TORCH_CHECK(impl->resizable(), "Trying to resize storage that is not resizable");
    c10::DataPtr fresh = impl->allocator()->allocate(size);
    const size_t kept = std::min(size, impl->nbytes());
    if (kept > 0) {
      std::memcpy(fresh.get(), impl->data(), kept);
    }
    impl->set_data_ptr_noswap(std::move(fresh));
    impl->set_nbytes(size);
  }
};

} // namespace

const at::Generator& default_generator(c10::DeviceIndex index) {
  check_device_index(index);
  static std::array<at::Generator, kMaxDevices> generators;
  static std::array<std::once_flag, kMaxDevices> created;
  std::call_once(created[index], [index] {
    generators[index] = make_generator(index);  // seeded like CUDA's: default_rng_seed_val
  });
  return generators[index];
}

void register_hooks() {
  static Hooks hooks;
  at::RegisterPrivateUse1HooksInterface(&hooks);
}

#if TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR < 14
// torch.Generator(device='standin') looks the generator up here before torch asked the hooks'
// getNewGenerator (2.14 warns that this registry is deprecated).
REGISTER_GENERATOR_PRIVATEUSE1(make_generator)
#endif

} // namespace torchdevice::standin
