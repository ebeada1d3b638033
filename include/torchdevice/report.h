#pragma once

#include <c10/core/Device.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

// The redirect report: which call sites of the user's program asked for a redirected device, for
// what, and how often. Off by default; then the hooks pay one relaxed atomic load, nothing more.
namespace torchdevice::report {

// Where a request came from: the first frame of the program outside torch and torchdevice.
struct Site {
  std::string file;
  int64_t line = 0;
  std::string function;
};

struct Entry {
  Site site;
  std::string what;       // the op or API that asked, e.g. "aten::empty.memory_format"
  std::string requested;  // the device it asked for, e.g. "cuda:1"
  std::string target;     // where it went
  uint64_t count = 0;
  std::string narrowed;   // "float64 -> float32" where the float64 policy narrowed it, else empty
};

namespace detail {
extern std::atomic<bool> enabled;
}

inline bool enabled() {
  return detail::enabled.load(std::memory_order_relaxed);
}
void set_enabled(bool on);

// Finds the call site; supplied by the Python layer. Without one, sites are "<C++>".
void set_site_resolver(std::function<Site()> resolver);

// Counts one request at the current call site (callers check enabled() first); a new site is
// logged once at info.
// A request whose dtype the float64 policy narrowed (`narrowed`, e.g. "float64 -> float32") is
// resolved to its call site even with the report off, and each such site is warned about once.
void record(const std::string& what, const std::string& requested, c10::Device target,
            const std::string& narrowed = {});

// The sites seen so far, in the order first seen.
std::vector<Entry> entries();
void clear();

// A table of entries() for the log, one line per site.
std::string summary();

}  // namespace torchdevice::report
