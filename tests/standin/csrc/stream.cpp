#include "stream.h"

#include "config.h"
#include "device.h"

#include <c10/util/Exception.h>

#include <pthread.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace torchdevice::standin {
namespace {

// Pool streams have ids 1..kPoolSize (0 is the default stream); new streams count up after them.
constexpr c10::StreamId kPoolSize = 4;

class Queue {
 public:
  void push(std::function<void()> task) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!started_) {
      // Detached and never joined: the queue outlives it (queues are never destroyed).
      std::thread([this] { serve(); }).detach();
      started_ = true;
    }
    tasks_.push_back(std::move(task));
    ++pushed_;
    changed_.notify_all();
  }

  // `task` must be quick and must not queue work: it runs under the queue's lock, so nothing can
  // be queued ahead of it meanwhile.
  void push_or_run_if_idle(std::function<void()> task) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (done_ != pushed_) {
      lock.unlock();
      push(std::move(task));
      return;
    }
    task();
  }

  bool idle() {
    std::lock_guard<std::mutex> lock(mutex_);
    return done_ == pushed_;
  }

  void synchronize() {
    std::unique_lock<std::mutex> lock(mutex_);
    const uint64_t ticket = pushed_;
    changed_.wait(lock, [&] { return done_ >= ticket; });
    if (!error_.empty()) {
      std::string error = std::move(error_);
      error_.clear();
      TORCH_CHECK(false, "standin: work queued on a stream failed: ", error);
    }
  }

 private:
  void serve() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      changed_.wait(lock, [&] { return !tasks_.empty(); });
      std::function<void()> task = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      std::string error;
      try {
        task();
      } catch (const std::exception& e) {
        error = e.what();
      }
      // What the task held (tensors, storages) is released before the work counts as done, so a
      // synchronized caller sees the memory statistics without it.
      task = nullptr;
      lock.lock();
      if (!error.empty() && error_.empty()) {
        error_ = std::move(error);
      }
      ++done_;
      changed_.notify_all();
    }
  }

  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::function<void()>> tasks_;
  uint64_t pushed_ = 0;
  uint64_t done_ = 0;
  bool started_ = false;
  std::string error_;
};

struct Registry {
  std::mutex mutex;
  std::array<std::map<c10::StreamId, std::unique_ptr<Queue>>, kMaxDevices> queues;
  std::array<c10::StreamId, kMaxDevices> next_new{};
  std::array<std::atomic<uint32_t>, kMaxDevices> next_pool{};
};

// Leaked on purpose: worker threads may still run while the process exits.
Registry* registry = new Registry;

void reset_in_child() {
  // A forked child has none of the parent's worker threads: it starts with fresh, empty streams.
  registry = new Registry;
}

const bool fork_handler_installed = [] {
  pthread_atfork(nullptr, nullptr, &reset_in_child);
  return true;
}();

Queue& queue(c10::Stream stream) {
  const c10::DeviceIndex index = stream.device_index();
  check_device_index(index);
  std::lock_guard<std::mutex> lock(registry->mutex);
  auto& slot = registry->queues[index][stream.id()];
  if (!slot) {
    slot = std::make_unique<Queue>();
  }
  return *slot;
}

std::vector<Queue*> device_queues(c10::DeviceIndex index) {
  check_device_index(index);
  std::lock_guard<std::mutex> lock(registry->mutex);
  std::vector<Queue*> queues;
  for (auto& entry : registry->queues[index]) {
    queues.push_back(entry.second.get());
  }
  return queues;
}

thread_local c10::DeviceIndex tls_device = 0;
thread_local std::array<c10::StreamId, kMaxDevices> tls_streams{};

// torch passes -1 for a device given without an index ('standin'): the current one.
c10::DeviceIndex resolve(c10::DeviceIndex index) {
  const c10::DeviceIndex resolved = index == -1 ? tls_device : index;
  check_device_index(resolved);
  return resolved;
}

} // namespace

c10::DeviceIndex current_device() { return tls_device; }

void set_current_device(c10::DeviceIndex index) {
  check_device_index(index);
  tls_device = index;
}

c10::Stream current_stream(c10::DeviceIndex index) {
  index = resolve(index);
  return c10::Stream(c10::Stream::UNSAFE, device_at(index), tls_streams[index]);
}

c10::Stream exchange_stream(c10::Stream stream) {
  const c10::Stream previous = current_stream(stream.device_index());
  tls_streams[stream.device_index()] = stream.id();
  return previous;
}

c10::Stream stream_from_pool(c10::DeviceIndex index) {
  index = resolve(index);
  const uint32_t slot = registry->next_pool[index]++ % kPoolSize;
  return c10::Stream(c10::Stream::UNSAFE, device_at(index), static_cast<c10::StreamId>(1 + slot));
}

c10::Stream new_stream(c10::DeviceIndex index) {
  index = resolve(index);
  std::lock_guard<std::mutex> lock(registry->mutex);
  const c10::StreamId id = kPoolSize + 1 + registry->next_new[index]++;
  return c10::Stream(c10::Stream::UNSAFE, device_at(index), id);
}

void enqueue(c10::Stream stream, std::function<void()> task) {
  queue(stream).push(std::move(task));
}

void enqueue_or_run_if_idle(c10::Stream stream, std::function<void()> task) {
  queue(stream).push_or_run_if_idle(std::move(task));
}

bool query_stream(c10::Stream stream) { return queue(stream).idle(); }

void synchronize_stream(c10::Stream stream) { queue(stream).synchronize(); }

void synchronize_device(c10::DeviceIndex index) {
  for (Queue* pending : device_queues(resolve(index))) {
    pending->synchronize();
  }
}

} // namespace torchdevice::standin
