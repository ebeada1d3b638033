#include "events.h"

#include <c10/util/Exception.h>

#include "stream.h"

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

} // namespace

void record_event(void** event, const c10::Stream& stream, c10::EventFlag flag) {
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
  enqueue_or_run_if_idle(stream, [state, version] {
    const Clock::time_point now = Clock::now();
    std::lock_guard<std::mutex> lock(state->mutex);
    if (version > state->completed) {
      state->completed = version;
      state->when = now;
    }
    state->changed.notify_all();
  });
}

void block_on_event(void* event, const c10::Stream& stream) {
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

bool query_event(void* event) {
  if (event == nullptr) {
    return true;
  }
  EventState& state = state_of(event);
  std::lock_guard<std::mutex> lock(state.mutex);
  return state.completed >= state.recorded;
}

void synchronize_event(void* event) {
  if (event == nullptr) {
    return;
  }
  EventState& state = state_of(event);
  std::unique_lock<std::mutex> lock(state.mutex);
  const uint64_t version = state.recorded;
  state.changed.wait(lock, [&] { return state.completed >= version; });
}

void destroy_event(void* event) { delete static_cast<EventHandle*>(event); }

double elapsed_ms(void* start, void* end) {
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

} // namespace torchdevice::standin
