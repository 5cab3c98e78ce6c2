// The heap walk's requests (protocol.h "heap-walk", "heap-walk-result",
// "heap-walk-cancel"): armed by the agent thread, run by the next
// PyMem/PyObject malloc or calloc of a thread that holds the GIL (gil_work.h),
// read back by polling. One walk at a time; a request never waits for the
// GIL, and detach (or a cancel) disarms one that has not run and stops one
// that is running at its next check.
#ifndef MEMTAP_AGENT_HEAP_REQUEST_H
#define MEMTAP_AGENT_HEAP_REQUEST_H

#include "agent/python_api.h"
#include "agent/text.h"

namespace memtap_agent {

// Agent thread, before the hooks go live.
void heapRequestConfigure(const PythonApi& api) noexcept;
// "heap-walk ARGS": arms a walk. Returns an error message (for "err ...")
// or null with the reply's KEY VALUE lines in out.
const char* armHeapWalk(const char* args, Text& out) noexcept;
// "heap-walk-result": the state of the newest request and, once done, its
// result lines.
void formatHeapWalkResult(Text& out) noexcept;
// "heap-walk-cancel", and detach: nothing armed stays armed, a running walk stops.
void cancelHeapWalk() noexcept;

void heapRequestForkPrepare() noexcept;
void heapRequestForkParent() noexcept;
void heapRequestForkChild() noexcept;

// Hook side (gil_work.h): runs the armed walk if this thread holds the GIL.
void runArmedHeapWalk() noexcept;

} // namespace memtap_agent

#endif // MEMTAP_AGENT_HEAP_REQUEST_H
