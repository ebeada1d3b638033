#pragma once

#include <c10/core/Event.h>
#include <c10/core/Stream.h>

// Events that mark a point in a stream (stream.h) and complete when the stream's worker gets
// there, taking their time stamp then: the event half of a DeviceGuardImplInterface, shared by the
// stand-in's guard and the emulated MPS's. `event` is the slot torch keeps for the backend.
namespace torchdevice::standin {

void record_event(void** event, const c10::Stream& stream, c10::EventFlag flag);
// Queues on `stream` a wait for the event's last record.
void block_on_event(void* event, const c10::Stream& stream);
bool query_event(void* event);
void synchronize_event(void* event);
void destroy_event(void* event);
// Milliseconds between two completed, timed events, with torch's checks and wording.
double elapsed_ms(void* start, void* end);

} // namespace torchdevice::standin
