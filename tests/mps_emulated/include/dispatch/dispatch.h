#pragma once
// Apple's libdispatch, as far as torch's MPS headers need it outside Objective-C
// (ATen/mps/MPSStream.h): the emulated MPS reads those headers' declarations and never runs a
// dispatch queue.
typedef void* dispatch_queue_t;
