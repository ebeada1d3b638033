// What counting CPU allocations costs, timed in C++ where the Python interpreter adds no noise.
//
//     build/torchdevice_allocator_bench [--json]
//
// On the CPU target torchdevice puts a CountingAllocator in front of torch's CPU allocator (see
// src/memory.cpp). This times three allocators side by side, interleaved within every repetition:
// torch's own, a wrapper that only forwards to it (what any allocator put in front costs at the
// least), and the CountingAllocator. Each time is the median over many repetitions of a loop of
// calls; bench/bench.py runs this binary and adds its rows to its table and JSON.

#include <ATen/ATen.h>
#include <c10/core/CPUAllocator.h>

#include "torchdevice/memory.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace {

// Forwards every call unchanged: the floor for any allocator put in front of torch's.
class ForwardingAllocator final : public c10::Allocator {
 public:
  explicit ForwardingAllocator(c10::Allocator* inner) : inner_(inner) {}
  c10::DataPtr allocate(size_t n) TORCHDEVICE_ALLOCATE_CONST override {
    return inner_->allocate(n);
  }
  c10::DeleterFnPtr raw_deleter() const override { return inner_->raw_deleter(); }
#if TORCH_VERSION_MAJOR >= 2
  void copy_data(void* dest, const void* src, std::size_t count) const override {
    inner_->copy_data(dest, src, count);
  }
#endif

 private:
  c10::Allocator* inner_;
};

constexpr int kRepetitions = 301;
constexpr double kLoopNs = 300e3;  // each timed loop lasts about this long

double time_calls(const std::function<void()>& call, int calls) {
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < calls; ++i) {
    call();
  }
  return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
}

double median(std::vector<double> samples) {
  std::nth_element(samples.begin(), samples.begin() + samples.size() / 2, samples.end());
  return samples[samples.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const bool json = argc > 1 && std::strcmp(argv[1], "--json") == 0;
  c10::Allocator* torch_allocator = c10::GetAllocator(c10::DeviceType::CPU);
  ForwardingAllocator forwarding(torch_allocator);
  torchdevice::CountingAllocator counting(torch_allocator);
  const std::vector<c10::Allocator*> allocators = {torch_allocator, &forwarding, &counting};

  const at::Tensor x = at::rand({3});
  const at::Tensor y = at::rand({3});
  const at::Tensor a = at::rand({32, 32});
  const at::Tensor b = at::rand({32, 32});
  c10::Allocator* current = nullptr;
  const std::vector<std::pair<std::string, std::function<void()>>> cases = {
      {"allocate(12) + free", [&] { current->allocate(12).clear(); }},
      {"at::zeros({3})", [] { at::zeros({3}); }},
      {"at::add(x, y), 3 elements", [&] { at::add(x, y); }},
      {"at::mm(a, b), 32x32", [&] { at::mm(a, b); }},
  };

  std::vector<int> calls;
  current = torch_allocator;
  for (const auto& c : cases) {
    calls.push_back(std::max(1, static_cast<int>(kLoopNs * 1000 / time_calls(c.second, 1000))));
  }

  // samples[case][allocator]
  std::vector<std::vector<std::vector<double>>> samples(
      cases.size(), std::vector<std::vector<double>>(allocators.size()));
  for (int rep = 0; rep < kRepetitions; ++rep) {
    for (size_t i = 0; i < allocators.size(); ++i) {
      // The order reverses every repetition, so no variant always runs first.
      const size_t k = rep % 2 == 0 ? i : allocators.size() - 1 - i;
      current = allocators[k];
      // The highest priority: each variant really is torch's CPU allocator while it runs.
      c10::SetAllocator(c10::DeviceType::CPU, current, 255);
      for (size_t c = 0; c < cases.size(); ++c) {
        samples[c][k].push_back(time_calls(cases[c].second, calls[c]) / calls[c]);
      }
    }
  }
  c10::SetAllocator(c10::DeviceType::CPU, torch_allocator, 255);

  if (json) {
    std::printf("[");
  } else {
    std::printf("%-28s%14s%16s%14s\n", "case", "torch ns", "forwarding ns", "counting ns");
  }
  for (size_t c = 0; c < cases.size(); ++c) {
    const double base = median(samples[c][0]);
    const double forward = median(samples[c][1]);
    const double count = median(samples[c][2]);
    if (json) {
      std::printf("%s{\"case\": \"%s\", \"torch_ns\": %.2f, \"forwarding_ns\": %.2f, "
                  "\"counting_ns\": %.2f}",
                  c == 0 ? "" : ", ", cases[c].first.c_str(), base, forward, count);
    } else {
      std::printf("%-28s%14.1f%10.1f (%+.1f)%8.1f (%+.1f)\n", cases[c].first.c_str(), base,
                  forward, forward - base, count, count - base);
    }
  }
  std::printf(json ? "]\n" : "");
  return 0;
}
