// The control socket and the loop that serves it on the agent thread
// (protocol.h: control socket, connections, commands).
#ifndef MEMTAP_AGENT_CONTROL_H
#define MEMTAP_AGENT_CONTROL_H

namespace memtap_agent {

// Creates, binds (mode 0600) and listens on path. Returns the fd or -1.
int openControlSocket(const char* path) noexcept;

// Serves g_agent.listenFd on the calling (agent) thread until a detach
// request from a client that is still connected, or until the loop cannot
// go on. tearDown removes the hooks, the tables and the socket and hands the
// agent back; it runs once, before the detach reply is sent. After it the
// loop touches no shared state: it sends that reply, closes its other
// connections and returns.
void serveControl(void (*tearDown)()) noexcept;

} // namespace memtap_agent

#endif // MEMTAP_AGENT_CONTROL_H
