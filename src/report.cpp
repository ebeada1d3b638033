#include "torchdevice/report.h"

#include "torchdevice/log.h"

#include <iomanip>
#include <map>
#include <set>
#include <mutex>
#include <sstream>
#include <tuple>

namespace torchdevice::report {

namespace detail {
std::atomic<bool> enabled{false};
}

namespace {

using Key = std::tuple<std::string, int64_t, std::string, std::string, std::string, std::string,
                       std::string>;

std::mutex report_mutex;
std::function<Site()> site_resolver;
std::map<Key, size_t> index_of;  // into seen
std::vector<Entry> seen;
// Sites already warned about for a narrowed dtype: for the life of the process, as a warning is
// meant to be read once.
std::set<std::tuple<std::string, int64_t, std::string>> warned;

std::string describe_site(const Site& site) {
  return site.file + ":" + std::to_string(site.line) + " (" + site.function + ")";
}

}  // namespace

void set_enabled(bool on) {
  detail::enabled.store(on, std::memory_order_relaxed);
}

void set_site_resolver(std::function<Site()> resolver) {
  std::lock_guard<std::mutex> lock(report_mutex);
  site_resolver = std::move(resolver);
}

void record(const std::string& what, const std::string& requested, c10::Device target,
            const std::string& narrowed) {
  std::function<Site()> resolver;
  {
    std::lock_guard<std::mutex> lock(report_mutex);
    resolver = site_resolver;
  }
  // Resolved outside the lock: the resolver may need the GIL, which another recording thread
  // could hold while waiting for this lock.
  Site site = resolver ? resolver() : Site{"<C++>", 0, ""};
  std::lock_guard<std::mutex> lock(report_mutex);
  if (!narrowed.empty() && warned.emplace(site.file, site.line, site.function).second) {
    log::warn("torchdevice: " + describe_site(site) + ": " + what + " asked for " + requested +
              ", redirected to " + target.str() + " as " + narrowed +
              " (the float64 policy; TORCHDEVICE_FLOAT64=error keeps float64)");
  }
  if (!narrowed.empty() && !enabled()) {
    return;  // resolved for the warning only: the report is off
  }
  Key key{site.file, site.line, site.function, what, requested, target.str(), narrowed};
  auto found = index_of.find(key);
  if (found != index_of.end()) {
    ++seen[found->second].count;
    return;
  }
  index_of.emplace(std::move(key), seen.size());
  seen.push_back({site, what, requested, target.str(), 1, narrowed});
  log::info("torchdevice: " + describe_site(site) + ": " + what + " asked for " + requested +
            " -> " + target.str() + (narrowed.empty() ? "" : " (" + narrowed + ")"));
}

std::vector<Entry> entries() {
  std::lock_guard<std::mutex> lock(report_mutex);
  return seen;
}

void clear() {
  std::lock_guard<std::mutex> lock(report_mutex);
  index_of.clear();
  seen.clear();
}

std::string summary() {
  const auto all = entries();
  std::ostringstream out;
  out << "torchdevice: redirect report, " << all.size() << " call site"
      << (all.size() == 1 ? "" : "s") << ":\n";
  out << std::setw(8) << "count" << "  request -> target  call site: op or API";
  for (const auto& entry : all) {
    out << "\n" << std::setw(8) << entry.count << "  " << entry.requested << " -> " << entry.target
        << "  " << describe_site(entry.site) << ": " << entry.what
        << (entry.narrowed.empty() ? "" : " (" + entry.narrowed + ")");
  }
  return out.str();
}

}  // namespace torchdevice::report
