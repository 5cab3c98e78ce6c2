// What the entry hands to the agent thread: copied into static storage on the
// borrowed thread (the caller's args live in a scratch mapping the host
// removes once that thread is back).
#ifndef MEMTAP_AGENT_AGENT_STATE_H
#define MEMTAP_AGENT_AGENT_STATE_H

#include "agent/protocol.h"
#include "agent/python_api.h"

namespace memtap_agent {

struct AgentState {
    memtap_start_args args; // scratch_addr is zeroed once release-scratch unmapped it
    PythonApi api;
    bool framesOk;
    int listenFd;
    // What this attach session cannot see (status, snapshot): when the hooks
    // went live (wall clock, ms) and the RSS the process had then, which
    // memtap never traced. Set by the agent thread once setup succeeded.
    uint64_t attachedAtUnixMs;
    uint64_t rssAtAttachBytes;
};

// args is written by the entry before the agent thread starts (pthread_create
// orders the writes before its reads); from then on g_agent is owned by that
// thread until it hands the agent back (tearDown in entry.cpp).
extern AgentState g_agent;

} // namespace memtap_agent

#endif // MEMTAP_AGENT_AGENT_STATE_H
