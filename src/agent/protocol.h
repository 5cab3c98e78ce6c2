/* The one header shared by the host (memtap) and the injected agent.
 *
 * Plain C on purpose: the agent is built without the C++ runtime, and the
 * layout of memtap_start_args is an ABI between two binaries that are built
 * together but meet inside someone else's process.
 *
 * Flow: the host hijacks one target thread, dlopen()s the agent from a memfd,
 * and calls MEMTAP_AGENT_ENTRY(&args) on that thread. The entry copies the
 * args, checks the interpreter, starts the agent's own thread and returns a
 * memtap_start_status at once. Everything else happens on the agent thread,
 * which serves the control socket named in args.socket_path.
 */
#ifndef MEMTAP_AGENT_PROTOCOL_H
#define MEMTAP_AGENT_PROTOCOL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MEMTAP_PROTOCOL_VERSION 1u

/* Exported symbol of the agent; its type is memtap_agent_start_fn. */
#define MEMTAP_AGENT_ENTRY "memtap_agent_start"

/* Name given to memfd_create in the target: it shows in /proc/PID/maps as
 * "/memfd:memtap-agent (deleted)", which is how a later attach finds the
 * dormant agent and reuses it instead of loading a second copy. */
#define MEMTAP_AGENT_MEMFD_NAME "memtap-agent"

enum memtap_mode {
    MEMTAP_MODE_SAMPLED = 0,
    MEMTAP_MODE_EXACT = 1,
};

struct memtap_start_args {
    uint32_t struct_size;      /* sizeof(struct memtap_start_args), checked by the agent */
    uint32_t protocol_version; /* MEMTAP_PROTOCOL_VERSION */
    uint32_t mode;             /* enum memtap_mode */
    uint32_t frames;           /* traceback depth, 1..MEMTAP_MAX_FRAMES */
    uint64_t sample_bytes;     /* mean sampling interval in bytes (sampled mode) */
    uint32_t peer_uid;         /* besides root, the only uid allowed on the socket */
    uint32_t reserved;
    /* Unix socket path as seen inside the target's mount namespace. */
    char socket_path[108]; /* sizeof(sockaddr_un.sun_path) */
    /* Path (target's view) of the module exporting the CPython C-API, or ""
     * when it is the main executable (a static libpython). */
    char python_module[4096];
};

#define MEMTAP_MAX_FRAMES 64u

enum memtap_start_status {
    MEMTAP_START_OK = 0,
    MEMTAP_START_ALREADY_RUNNING = 1, /* an agent thread is already serving */
    MEMTAP_START_BAD_ARGS = 2,        /* size/version mismatch or bad values */
    MEMTAP_START_NO_PYTHON = 3,       /* C-API symbols not found */
    MEMTAP_START_NOT_INITIALIZED = 4, /* Py_IsInitialized() == 0 */
    MEMTAP_START_FINALIZING = 5,      /* interpreter is shutting down */
    MEMTAP_START_NO_GIL = 6,          /* 3.6: threads never initialized */
    MEMTAP_START_THREAD_FAILED = 7,   /* pthread_create failed, or the agent
                                         could not map its tables */
    MEMTAP_START_SOCKET_FAILED = 8,   /* could not bind the control socket */
};

typedef int (*memtap_agent_start_fn)(const struct memtap_start_args*);

/* Control socket: one request line, one reply.
 *   request:  "<command>[ <arg>...]\n"
 *   reply:    "ok <N>\n" followed by exactly N bytes of payload, or
 *             "err <one-line message>\n"
 * Commands:
 *   status           payload: "KEY VALUE\n" lines; keys (values are decimal
 *                    unless noted): python (e.g. "3.11.7"), mode ("exact" or
 *                    "sampled"), sample_bytes, frames, allocations_seen
 *                    (allocator calls seen by the hooks since attach),
 *                    traced_bytes, traced_count (estimates in sampled mode),
 *                    malloc_free_bytes (free bytes glibc's malloc holds,
 *                    mallinfo2), agent_bytes (the agent's own mappings),
 *                    hooks ("installed", "passthrough" once recording
 *                    stopped, or "lost": some domain's chain no longer
 *                    reaches our hook and it could not be installed again),
 *                    hook_chain ("intact", or the worst state and its
 *                    domains: "lost:D,...", "unsettled:D,..." (the allocator
 *                    kept changing while read), "wrapped:D,..." (another hook
 *                    installed after ours still calls it, e.g.
 *                    tracemalloc.start() after attach); D is raw, mem, obj),
 *                    hook_reinstalls (times since attach a status or
 *                    snapshot found our hook cut out of a chain, e.g. by
 *                    tracemalloc.stop() when tracemalloc was started before
 *                    the attach, and installed it again on top; the traces
 *                    restart then), hook_reinstall_unix_ms (wall clock of the
 *                    last one, 0 if none), hook_reinstall_domains ("none" or
 *                    e.g. "mem,obj"),
 *                    frame_capture ("yes", or "no" when the frame walker
 *                    does not support this interpreter: tracebacks are then
 *                    empty). allocations_seen is batched per thread and may
 *                    lag by up to 63 calls per thread. Readers must ignore
 *                    keys they do not know.
 *   detach           payload: empty; the agent removes its hooks, closes and
 *                    unlinks the socket, and its thread ends. All of that
 *                    happens before the reply is sent: once the host reads
 *                    "ok 0" the socket path is gone and a new start works.
 *   snapshot         payload: a snapshot in the text format below
 *
 * Snapshot format (one record per line, fields separated by one space, the
 * last field of F lines runs to the end of the line; '\\', '\n' and '\t' in
 * names are written as "\\\\", "\\n" and "\\t"):
 *   memtap-snapshot 1
 *   mode exact|sampled
 *   sample_bytes N
 *   traced_bytes N          (estimate in sampled mode)
 *   traced_count N
 *   T SIZE COUNT NFRAMES    one per distinct traceback
 *   F LINE FILE\tFUNCTION   NFRAMES lines after each T, most recent call first
 *   end
 */

#ifdef __cplusplus
}
#endif

#endif /* MEMTAP_AGENT_PROTOCOL_H */
