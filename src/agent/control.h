// The control socket and the agent thread that serves it (protocol.h).
#ifndef MEMTAP_AGENT_CONTROL_H
#define MEMTAP_AGENT_CONTROL_H

namespace memtap_agent {

// Creates, binds (mode 0600) and listens on path. Returns the fd or -1.
int openControlSocket(const char* path) noexcept;

// Starts the detached agent thread with every signal blocked, serving
// g_agent.listenFd until a detach request. onExit runs as the thread's last
// act, after the socket is closed and the tables are freed.
bool startAgentThread(void (*onExit)()) noexcept;

} // namespace memtap_agent

#endif // MEMTAP_AGENT_CONTROL_H
