// What the entry hands to the agent thread: copied into static storage on the
// hijacked thread (the caller's args live on its stack or in a scratch
// mapping the host removes right after the call).
#ifndef MEMTAP_AGENT_AGENT_STATE_H
#define MEMTAP_AGENT_AGENT_STATE_H

#include "agent/protocol.h"
#include "agent/python_api.h"

namespace memtap_agent {

struct AgentState {
    memtap_start_args args;
    PythonApi api;
    bool framesOk;
    int listenFd;
};

// Written by the entry before the agent thread starts, then owned by that
// thread until it ends (pthread_create orders the writes before its reads).
extern AgentState g_agent;

} // namespace memtap_agent

#endif // MEMTAP_AGENT_AGENT_STATE_H
