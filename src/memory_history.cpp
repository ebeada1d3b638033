#include "torchdevice/memory_history.h"

#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <mutex>

namespace torchdevice::memory_history {

namespace {

std::atomic<bool> on{false};

// Heap-allocated and never freed: torch frees tensors from its own static destructors at exit.
struct State {
  std::mutex mutex;
  size_t capacity = 0;
  Gatherer gather = nullptr;
  std::deque<Event> events;
  std::map<uintptr_t, Block> live;
};

State& state() {
  static auto* instance = new State();
  return *instance;
}

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void push(Event event) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  if (event.alloc) {
    s.live[event.address] = Block{event.address, event.size, event.frames};
  } else {
    s.live.erase(event.address);
  }
  if (s.capacity == 0) {
    return;
  }
  if (s.events.size() == s.capacity) {
    s.events.pop_front();
  }
  s.events.push_back(std::move(event));
}

}  // namespace

void start(size_t max_entries, Gatherer gatherer) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.capacity = max_entries;
  s.gather = gatherer;
  s.events.clear();
  s.live.clear();
  on.store(true);
}

void stop() {
  on.store(false);
}

bool recording() {
  return on.load(std::memory_order_relaxed);
}

void on_alloc(const void* address, size_t size) {
  Gatherer gatherer = nullptr;
  {
    std::lock_guard<std::mutex> lock(state().mutex);
    gatherer = state().gather;
  }
  // The stack is read outside the lock: the gatherer may wait for the GIL.
  push({true, reinterpret_cast<uintptr_t>(address), static_cast<int64_t>(size), now_us(),
        gatherer != nullptr ? gatherer() : nullptr});
}

void on_free(const void* address, size_t size) {
  push({false, reinterpret_cast<uintptr_t>(address), static_cast<int64_t>(size), now_us(),
        nullptr});
}

std::vector<Event> trace() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  return {s.events.begin(), s.events.end()};
}

std::vector<Block> live_blocks() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  std::vector<Block> blocks;
  for (const auto& item : s.live) {
    blocks.push_back(item.second);
  }
  return blocks;
}

}  // namespace torchdevice::memory_history
