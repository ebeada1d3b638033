#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

// torch.cuda.memory._record_memory_history for the CPU target: while recording, the counting
// allocator (memory.h) reports each allocation and free here, and they are kept as a bounded
// trace of events plus the blocks still live, each with the Python stack that allocated it.
namespace torchdevice::memory_history {

struct Frame {
  std::string filename;
  int64_t line = 0;
  std::string name;
};
using Frames = std::shared_ptr<const std::vector<Frame>>;
// Reads the calling thread's stack; supplied by the Python layer, may return null.
using Gatherer = Frames (*)();

struct Event {
  bool alloc = true;  // false: a free
  uintptr_t address = 0;
  int64_t size = 0;
  int64_t time_us = 0;
  Frames frames;
};

struct Block {
  uintptr_t address = 0;
  int64_t size = 0;
  Frames frames;
};

// Starts (or restarts) recording; the trace keeps the last `max_entries` events. A null
// gatherer records no stacks.
void start(size_t max_entries, Gatherer gatherer);
// Stops recording; what was recorded stays readable until the next start.
void stop();
bool recording();

// Called by the counting allocator for every block while recording.
void on_alloc(const void* address, size_t size);
void on_free(const void* address, size_t size);

std::vector<Event> trace();
// Blocks allocated while recording and not freed yet, by address.
std::vector<Block> live_blocks();

}  // namespace torchdevice::memory_history
