#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/DispatchKey.h>

// Which device this build of the stand-in's sources plays. The same allocator, streams, kernels
// and CPU fallback serve two test libraries: the stand-in accelerator (torch's PrivateUse1 backend
// named 'standin', tests/standin) and the emulated MPS (DeviceType::MPS itself, tests/mps_emulated,
// built with TORCHDEVICE_EMULATED_MPS defined).
namespace torchdevice::standin {

#ifdef TORCHDEVICE_EMULATED_MPS
constexpr c10::DeviceType kDeviceType = c10::DeviceType::MPS;
constexpr c10::DispatchKey kDispatchKey = c10::DispatchKey::MPS;
// How the device names itself in its errors, as torch's MPS backend does.
constexpr const char* kName = "MPS";
// The dispatch key's name, for TORCH_LIBRARY_IMPL (which takes a bare token).
#define TORCHDEVICE_DEVICE_KEY MPS
#else
constexpr c10::DeviceType kDeviceType = c10::DeviceType::PrivateUse1;
constexpr c10::DispatchKey kDispatchKey = c10::DispatchKey::PrivateUse1;
constexpr const char* kName = "standin";
#define TORCHDEVICE_DEVICE_KEY PrivateUse1
#endif

inline bool on_device(const at::Tensor& tensor) {
  return tensor.defined() && tensor.device().type() == kDeviceType;
}

inline c10::Device device_at(c10::DeviceIndex index) { return {kDeviceType, index}; }

} // namespace torchdevice::standin
