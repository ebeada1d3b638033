// libFuzzer target over the Python-free parsing and rewriting torchdevice does on every request:
// device specs, device indices, target selection with an override, and the rewriting of Device
// arguments on dispatcher stacks. Errors must be c10::Error; anything accepted must be consistent.
// Built and run by scripts/fuzz.sh (clang, -fsanitize=fuzzer,address,undefined).
#include <fuzzer/FuzzedDataProvider.h>

#include <ATen/core/ivalue.h>
#include <ATen/core/stack.h>
#include <c10/util/Exception.h>

#include "torchdevice/device_spec.h"
#include "torchdevice/dispatch.h"
#include "torchdevice/target.h"

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

using c10::Device;
using c10::DeviceType;

// Explicit checks (not assert): the fuzz build may define NDEBUG.
#define FUZZ_EXPECT(cond)                                                        \
  do {                                                                           \
    if (!(cond)) {                                                               \
      std::fprintf(stderr, "fuzz invariant failed: %s (%s:%d)\n", #cond, __FILE__, \
                   __LINE__);                                                    \
      std::abort();                                                              \
    }                                                                            \
  } while (0)

DeviceType any_type(FuzzedDataProvider& data) {
  return static_cast<DeviceType>(data.ConsumeIntegralInRange<int>(
      0, static_cast<int>(DeviceType::COMPILE_TIME_MAX_DEVICE_TYPES) - 1));
}

Device any_device(FuzzedDataProvider& data) {
  return Device(any_type(data), data.ConsumeIntegralInRange<c10::DeviceIndex>(-1, 127));
}

void fuzz_parse(const std::string& spec) {
  try {
    const Device device = torchdevice::parse_device(spec);
    // Whatever is accepted round-trips, and an index is the one written, not a wrapped one.
    FUZZ_EXPECT(torchdevice::parse_device(device.str()) == device);
    const auto colon = spec.find(':');
    if (colon != std::string::npos) {
      FUZZ_EXPECT(device.has_index());
      FUZZ_EXPECT(std::to_string(device.index()) == spec.substr(colon + 1));
    }
  } catch (const c10::Error&) {
  }
}

void fuzz_index(FuzzedDataProvider& data) {
  const auto index = data.ConsumeIntegral<int64_t>();
  const DeviceType type = data.ConsumeBool() ? DeviceType::CUDA : DeviceType::MPS;
  try {
    FUZZ_EXPECT(torchdevice::check_device_index(index, type) == index);
    FUZZ_EXPECT(index >= 0 && index <= 127);
  } catch (const c10::Error&) {
    FUZZ_EXPECT(index < 0 || index > 127);
  }
}

c10::optional<torchdevice::Redirect> fuzz_select(FuzzedDataProvider& data) {
  torchdevice::Availability available;
  available.cuda = data.ConsumeBool();
  available.mps = data.ConsumeBool();
  c10::optional<std::string> override;
  if (data.ConsumeBool()) {
    override = data.ConsumeRandomLengthString(32);
  }
  try {
    const torchdevice::Redirect redirect = torchdevice::select_redirect(available, override);
    // The target is available, never itself redirected, and the redirect survives its packing.
    FUZZ_EXPECT(torchdevice::is_available(redirect.target().type(), available));
    FUZZ_EXPECT(!redirect.redirects(redirect.target().type()));
    FUZZ_EXPECT(redirect.redirects(DeviceType::CUDA) == !available.cuda);
    FUZZ_EXPECT(redirect.redirects(DeviceType::MPS) == !available.mps);
    const auto unpacked = torchdevice::Redirect::unpack(redirect.pack());
    FUZZ_EXPECT(unpacked.mask() == redirect.mask() && unpacked.target() == redirect.target());
    torchdevice::describe(redirect);
    return redirect;
  } catch (const c10::Error&) {
    FUZZ_EXPECT(override.has_value() && !override->empty());
    return c10::nullopt;
  }
}

c10::IValue any_value(FuzzedDataProvider& data, int depth) {
  switch (data.ConsumeIntegralInRange<int>(0, 6)) {
    case 0:
      return c10::IValue();
    case 1:
      return c10::IValue(data.ConsumeIntegral<int64_t>());
    case 2:
      return c10::IValue(data.ConsumeRandomLengthString(16));
    case 3:
      if (depth < 3) {
        c10::impl::GenericList list(c10::AnyType::get());
        const auto size = data.ConsumeIntegralInRange<size_t>(0, 4);
        for (size_t i = 0; i < size; ++i) {
          list.push_back(any_value(data, depth + 1));
        }
        return c10::IValue(list);
      }
      return c10::IValue();
    default:
      return c10::IValue(any_device(data));
  }
}

bool still_redirected(const c10::IValue& value, const torchdevice::Redirect& redirect) {
  if (value.isDevice()) {
    return redirect.redirects(value.toDevice().type());
  }
  if (value.isList()) {
    for (const auto& element : value.toListRef()) {
      if (still_redirected(element, redirect)) {
        return true;
      }
    }
  }
  return false;
}

void fuzz_rewrite(FuzzedDataProvider& data, const torchdevice::Redirect& redirect) {
  torch::jit::Stack stack;
  const auto size = data.ConsumeIntegralInRange<size_t>(0, 8);
  for (size_t i = 0; i < size; ++i) {
    stack.push_back(any_value(data, 0));
  }
  const auto num_arguments = data.ConsumeIntegralInRange<size_t>(0, stack.size());
  const size_t below = stack.size() - num_arguments;
  std::vector<std::string> before;
  for (size_t i = 0; i < below; ++i) {
    before.push_back(stack[i].tagKind() + (stack[i].isDevice() ? stack[i].toDevice().str() : ""));
  }
  size_t redirected_arguments = 0;
  for (size_t i = below; i < stack.size(); ++i) {
    redirected_arguments += still_redirected(stack[i], redirect) ? 1 : 0;
  }
  const size_t rewritten = torchdevice::rewrite_device_arguments(stack, num_arguments, redirect);
  // Each argument holding a redirected device counts once, and none is left behind.
  FUZZ_EXPECT(rewritten == redirected_arguments);
  for (size_t i = below; i < stack.size(); ++i) {
    FUZZ_EXPECT(!still_redirected(stack[i], redirect));
  }
  for (size_t i = 0; i < below; ++i) {
    FUZZ_EXPECT(before[i] == stack[i].tagKind() +
                                 (stack[i].isDevice() ? stack[i].toDevice().str() : ""));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  FuzzedDataProvider data(bytes, size);
  fuzz_parse(data.ConsumeRandomLengthString(64));
  fuzz_index(data);
  const auto redirect = fuzz_select(data);
  if (redirect.has_value()) {
    fuzz_rewrite(data, *redirect);
  }
  return 0;
}
