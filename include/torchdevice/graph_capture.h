#pragma once

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>
#include <c10/core/Storage.h>

#include "torchdevice/target.h"

#include <cstddef>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

// CUDA graphs on a target without them: while a capture is underway on a thread, every op that
// reaches the kernels (below autograd and autocast, as the kernels a CUDA graph holds) is run and
// recorded with its arguments. replay() runs the recorded ops again on the same tensors: they read
// the captured inputs' current values, in-place ops write where they wrote, and each functional
// op's result is copied into the tensor the capture produced, so every later op and every caller
// holding a captured output sees the new values. As on CUDA, capturing changes no tensor that
// existed before the capture (their bytes are put back at the end), random ops draw fresh numbers
// on each replay, and pools only hint at sharing: each graph keeps its own tensors alive.
namespace torchdevice {

class CapturedGraph {
 public:
  CapturedGraph() = default;
  CapturedGraph(const CapturedGraph&) = delete;
  CapturedGraph& operator=(const CapturedGraph&) = delete;
  ~CapturedGraph();

  // Starts recording this thread's ops into this graph, and those of the threads that work for
  // it with its dispatch state (autograd's device threads). One capture per process at a time.
  void begin();
  // Stops recording and restores what the capture overwrote of older tensors.
  void end();
  // Runs the recorded ops again. Only between end() and reset().
  void replay();
  // Forgets the recording and releases its tensors.
  void reset();

  bool capturing() const { return capturing_; }
  bool captured() const { return captured_; }
  // The recorded ops, as "aten::mm (replayed)" lines, in order (debug_dump).
  std::vector<std::string> describe() const;
  // How many recorded ops replay() runs.
  size_t replayed_ops() const;

  // Called by the recording fallback.
  void record(const c10::OperatorHandle& op, c10::DispatchKeySet keys, torch::jit::Stack* stack);

 private:
  struct Record {
    c10::OperatorHandle op;
    c10::DispatchKeySet keys;  // the keys below the recorder, as when captured
    torch::jit::Stack arguments;
    std::vector<at::Tensor> results;  // a functional op's results: replay copies into them
    bool replay = true;
  };
  struct Saved {
    c10::Storage storage;
    at::Tensor bytes;  // its contents before the capture first wrote to it
  };

  void save_before_write(const c10::FunctionSchema& schema, const torch::jit::Stack& arguments);
  void restore_saved();

  std::vector<Record> records_;
  std::vector<Saved> saved_;
  std::unordered_set<const c10::StorageImpl*> saved_ids_;
  std::unordered_set<const c10::StorageImpl*> fresh_;  // storage the capture allocated
  std::vector<c10::Storage> pool_;                     // ... kept alive, as a graph's pool is
  Redirect redirect_;  // in force when the capture began: its target's work is captured
  bool capturing_ = false;
  bool captured_ = false;
  std::mutex mutex_;  // records from the capturing thread and the threads working for it
};

// The graph capturing on this thread, or nullptr.
CapturedGraph* capturing_graph();
// Drops the recording fallback (uninstall); a capture underway on any thread must have ended.
void deregister_graph_capture();

}  // namespace torchdevice
