/* The one header shared by the host (memtap) and the injected agent.
 *
 * Plain C on purpose: the agent is built without the C++ runtime, and the
 * layout of memtap_start_args is an ABI between two binaries that are built
 * together but meet inside someone else's process.
 *
 * Flow: the host borrows one target thread, dlopen()s the agent from a memfd
 * (first attach only), and calls MEMTAP_AGENT_ENTRY(&args) on that thread.
 * The entry does the minimum a borrowed thread may do: it checks struct_size
 * and protocol_version, writes args->start_status_addr, checks the values,
 * claims the agent, copies the args and calls pthread_create. It returns at
 * once with MEMTAP_START_OK (thread started), ALREADY_RUNNING, BAD_ARGS or
 * THREAD_FAILED. Everything else (finding the C-API, checking the
 * interpreter, binding the socket, mapping the tables, installing the hooks,
 * fork handlers) happens on the agent's own thread, which reports the
 * outcome in the start-status word:
 *
 *   The host reads the int32_t at args->start_status_addr (after the call,
 *   with /proc/PID/mem) while it polls for the socket. It holds
 *   MEMTAP_START_PENDING while the agent thread sets up, then
 *   MEMTAP_START_OK once the socket is bound and the hooks are live, or a
 *   failure status (NO_PYTHON, NOT_INITIALIZED, FINALIZING, SOCKET_FAILED,
 *   THREAD_FAILED) once the agent thread has undone everything it did and is
 *   about to end (no socket, no hooks). Writing the failure and making the
 *   agent dormant again are one atomic store, so a host that reads a
 *   failure may start again at once. After ALREADY_RUNNING the word
 *   belongs to the start that is running: PENDING (another attach is
 *   setting up; poll on) or OK (attached). After BAD_ARGS or THREAD_FAILED
 *   from the entry itself no thread runs: the return value is the answer.
 *
 * The borrowed thread returns through code in the host's scratch mapping.
 * Today's host unmaps it itself through a stub outside it (src/inject/
 * scratch_stub.h) and passes scratch_addr = scratch_size = 0. A scratch that
 * a killed memtap left while an agent serves is released with
 * "release-scratch ADDR SIZE" (below), which the agent checks against the
 * scratch header first.
 */
#ifndef MEMTAP_AGENT_PROTOCOL_H
#define MEMTAP_AGENT_PROTOCOL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MEMTAP_PROTOCOL_VERSION 3u

/* Exported symbol of the agent; its type is memtap_agent_start_fn. */
#define MEMTAP_AGENT_ENTRY "memtap_agent_start"

/* Name given to memfd_create in the target: it shows in /proc/PID/maps as
 * "/memfd:memtap-agent (deleted)", which is how a later attach finds the
 * dormant agent and reuses it instead of loading a second copy. */
#define MEMTAP_AGENT_MEMFD_NAME "memtap-agent"

/* The agent thread's name (prctl PR_SET_NAME, at most 15 bytes): what
 * /proc/PID/task/TID/comm shows, how the host tells the agent's thread
 * from the program's. */
#define MEMTAP_AGENT_THREAD_NAME "memtap-agent"

/* Control commands ("Commands" below lists their replies). */
#define MEMTAP_CMD_STATUS "status"
#define MEMTAP_CMD_DETACH "detach"
#define MEMTAP_CMD_SNAPSHOT "snapshot"
#define MEMTAP_CMD_SNAPSHOT_PEAK "snapshot peak"
#define MEMTAP_CMD_PEAK_RESET "peak-reset"
#define MEMTAP_CMD_PYMALLOC "pymalloc"
#define MEMTAP_CMD_MALLOC_TRIM "malloc-trim"
#define MEMTAP_CMD_RELEASE_SCRATCH "release-scratch"
#define MEMTAP_CMD_HEAP_WALK "heap-walk"
#define MEMTAP_CMD_HEAP_WALK_RESULT "heap-walk-result"
#define MEMTAP_CMD_HEAP_WALK_CANCEL "heap-walk-cancel"

/* First word of a snapshot's first line ("Snapshot format" below), and the
 * version the agent writes. */
#define MEMTAP_SNAPSHOT_MAGIC "memtap-snapshot"
#define MEMTAP_SNAPSHOT_VERSION 4

enum memtap_mode {
    MEMTAP_MODE_SAMPLED = 0,
    MEMTAP_MODE_EXACT = 1,
};

/* features bits. */
#define MEMTAP_FEATURE_NATIVE                                                                           \
    1u /* also trace malloc/calloc/realloc/free/posix_memalign/aligned_alloc/                           \
          memalign/mmap/munmap called by native modules (src/agent/native_calls.h) */

/* peer_flags bits. */
#define MEMTAP_PEER_UNMAPPED                                                                            \
    1u /* memtap's euid has no mapping in the target's user                                             \
          namespace: peer_uid is the overflow uid */

struct memtap_start_args {
    uint32_t struct_size;      /* sizeof(struct memtap_start_args), checked by the agent */
    uint32_t protocol_version; /* MEMTAP_PROTOCOL_VERSION */
    uint32_t mode;             /* enum memtap_mode */
    uint32_t frames;           /* traceback depth, 1..MEMTAP_MAX_FRAMES */
    uint64_t sample_bytes;     /* mean sampling interval in bytes (sampled mode) */
    /* Besides uid 0 of the target's user namespace, the only uid allowed on
     * the socket: memtap's euid as the target's user namespace sees it
     * (SO_PEERCRED is translated into the namespace of the reader, the agent),
     * or the overflow uid with MEMTAP_PEER_UNMAPPED when it has no mapping
     * there (host root attaching a rootless container). */
    uint32_t peer_uid;
    uint32_t peer_flags; /* MEMTAP_PEER_* */
    /* The host's scratch mapping in the target, page-aligned, unmapped by the
     * agent thread on "release-scratch"; 0, 0 when there is none to release. */
    uint64_t scratch_addr;
    uint64_t scratch_size;
    /* OUT: written by the entry (whenever struct_size and protocol_version
     * match) with the address of the agent's int32_t start-status word. */
    uint64_t start_status_addr;
    /* Unix socket path as seen inside the target's mount namespace. */
    char socket_path[108]; /* sizeof(sockaddr_un.sun_path) */
    /* Path (target's view) of the module exporting the CPython C-API, or ""
     * when it is the main executable (a static libpython). */
    char python_module[4096];
    uint32_t features; /* MEMTAP_FEATURE_* (protocol version 3) */
    uint32_t reserved; /* 0 */
};

#define MEMTAP_MAX_FRAMES 64u

/* The head of the control block of a host scratch mapping, at
 * MEMTAP_SCRATCH_CONTROL_OFFSET; the host's ScratchControl starts with it. */
#define MEMTAP_SCRATCH_CONTROL_OFFSET 0x1000u
#define MEMTAP_SCRATCH_MAGIC "memtapS1" /* 8 bytes, no terminator stored */
struct memtap_scratch_header {
    char magic[8];
    uint32_t layout_version;
    uint32_t total_bytes; /* the whole mapping */
    int32_t owner_pid;    /* the memtap that made it (host pid) */
    uint32_t in_call;     /* 1 while the borrowed thread may run in it */
};

/* Control-channel limits (see "Connections" below). */
#define MEMTAP_MAX_CONNECTIONS 16u
#define MEMTAP_REQUEST_TIMEOUT_MS 2000u
#define MEMTAP_REPLY_TIMEOUT_MS 10000u

enum memtap_start_status {
    MEMTAP_START_PENDING = -1, /* start-status word only: the agent thread is setting up */
    MEMTAP_START_OK = 0,
    MEMTAP_START_ALREADY_RUNNING = 1, /* an agent thread is already serving */
    MEMTAP_START_BAD_ARGS = 2,        /* size/version mismatch or bad values */
    MEMTAP_START_NO_PYTHON = 3,       /* C-API symbols not found */
    MEMTAP_START_NOT_INITIALIZED = 4, /* Py_IsInitialized() == 0 and not finalizing */
    MEMTAP_START_FINALIZING = 5,      /* interpreter is shutting down (checked first:
                                         Py_IsInitialized() is already 0 then) */
    MEMTAP_START_NO_GIL = 6,          /* 3.6: threads never initialized */
    MEMTAP_START_THREAD_FAILED = 7,   /* pthread_create failed (entry), or the
                                         agent could not map its tables (word) */
    MEMTAP_START_SOCKET_FAILED = 8,   /* could not bind the control socket */
};

/* args is read and written (start_status_addr) during the call only. */
typedef int (*memtap_agent_start_fn)(struct memtap_start_args*);

/* Control socket: one request line, one reply.
 *   request:  "<command>[ <arg>...]\n"
 *   reply:    "ok <N>\n" followed by exactly N bytes of payload, or
 *             "err <one-line message>\n"
 * Connections (the agent serves them side by side, so one slow client does
 * not hold up another or a detach):
 *   - at most MEMTAP_MAX_CONNECTIONS at once; past that, the oldest one still
 *     waiting for its request line is closed with "err busy" to make room,
 *     or the newcomer is, when every connection is busy with a reply;
 *   - the request line must arrive within MEMTAP_REQUEST_TIMEOUT_MS of the
 *     connect, and the whole reply must be taken by the client within
 *     MEMTAP_REPLY_TIMEOUT_MS of being ready; otherwise the connection is
 *     closed;
 *   - a state-changing request (detach) whose client has already closed its
 *     connection (it gave up, e.g. on a timeout) is not acted upon. A client
 *     must keep its end open until it has read the reply (a shutdown of its
 *     write side is fine).
 * Commands:
 *   status           payload: "KEY VALUE\n" lines; keys (values are decimal
 *                    unless noted): python (e.g. "3.11.7"), mode ("exact" or
 *                    "sampled"), sample_bytes, frames, attached_at_unix_ms
 *                    (wall clock when this session's hooks went live: memory
 *                    is traced since then), rss_at_attach_bytes (the
 *                    process's RSS then, from /proc/self/statm: none of it is
 *                    traced), allocations_seen
 *                    (allocation calls, malloc/calloc/realloc, seen by
 *                    the hooks since attach; frees are not counted),
 *                    traced_bytes, traced_count (estimates in sampled mode),
 *                    malloc_free_bytes (free bytes glibc's malloc holds,
 *                    mallinfo2 fordblks), and from the same mallinfo2
 *                    read when glibc has it: malloc_heap_bytes (arena:
 *                    taken from the OS with brk and for the other arenas),
 *                    malloc_mmap_bytes (hblkhd: large chunks mmapped one by
 *                    one), malloc_in_use_bytes (uordblks + hblkhd),
 *                    malloc_releasable_bytes (keepcost: the top chunk),
 *                    agent_bytes (the agent's own mappings),
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
 *                    peak_traced_bytes (high-water mark of traced_bytes
 *                    since attach, a trace restart or the last peak-reset),
 *                    peak_unix_ms (wall clock, CLOCK_REALTIME_COARSE, when
 *                    it was reached; 0 if never), peak_breakdown_bytes
 *                    (traced_bytes of the breakdown "snapshot peak" serves,
 *                    within max(peak/64, 1 MiB or 8 samples) of the peak),
 *                    frame_capture ("yes", or "no" when the frame walker
 *                    does not support this interpreter: tracebacks are then
 *                    empty), frame_note (one line: where the frame layout
 *                    came from, e.g. "layout table, confirmed by
 *                    _Py_DebugOffsets", or why frames are off; to the end of
 *                    the line), tracked_calls ("rewired", or "unavailable"
 *                    without PyTraceMalloc_Track), tracked_call_slots (GOT
 *                    slots of loaded modules' PyTraceMalloc_Track/_Untrack
 *                    calls pointing at the agent), tracked_call_modules
 *                    (comma-separated basenames, or "none"),
 *                    tracked_call_skipped (slots left alone) and, when not
 *                    0, tracked_call_skip_note ("MODULE: reason"),
 *                    tracked_untraced_calls (Track calls of a domain past
 *                    the agent's 15), native ("yes", "no", or "unavailable":
 *                    asked for but libc's allocator was not found) and with
 *                    "yes" native_call_slots, native_call_modules,
 *                    native_call_skipped, native_call_skip_note (the same
 *                    for the native modules' malloc/mmap slots),
 *                    traced_tracked_bytes, traced_native_heap_bytes,
 *                    traced_native_mmap_bytes (the parts of traced_bytes
 *                    from PyTraceMalloc_Track callers, native malloc and
 *                    native anonymous mmaps). allocations_seen is batched
 *                    per thread and may lag by up to 63 calls per thread,
 *                    and in sampled mode by up to 16 KiB more of a
 *                    thread's allocations (thread_state.h).
 *                    Readers must ignore keys they do not know.
 *   detach           payload: empty; the agent removes its hooks, closes and
 *                    unlinks the socket, and its thread ends. All of that
 *                    happens before the reply is sent: once the host reads
 *                    "ok 0" the socket path is gone and a new start works.
 *   snapshot         payload: a snapshot in the text format below
 *   snapshot peak    payload: the same format, holding the per-traceback
 *                    breakdown at the traced high-water mark; traced_bytes
 *                    and traced_count are the totals of that breakdown. It
 *                    is copied lazily (src/agent/engine.cpp, "Peak"): the
 *                    sizes of all tracebacks together differ from those at
 *                    the true peak by at most max(peak/64, 1 MiB or 8
 *                    samples).
 *   peak-reset       payload: empty; the peak becomes what is traced now.
 *   pymalloc         payload: "KEY VALUE" lines. Arms one read of pymalloc's
 *                    state unless one is armed, and replies at once, never
 *                    waiting: the read runs inside the next PyMem/PyObject
 *                    allocation of a thread holding the GIL
 *                    (src/agent/pymalloc_read.h), so an idle interpreter
 *                    (a uWSGI worker holding the GIL in epoll_wait) may not
 *                    run it until its next request; detach disarms it. A
 *                    host polls until pymalloc_completed >= the
 *                    pymalloc_requested of its first reply. Keys:
 *                    pymalloc_requested (sequence number of the read that
 *                    answers this request), pymalloc_completed (that of the
 *                    last completed read, 0 if none), pymalloc_read_unix_ms
 *                    (wall clock of that read, 0 if none), pymalloc_result
 *                    ("ok"; "disabled": the interpreter does not use pymalloc,
 *                    e.g. PYTHONMALLOC=malloc; "unreadable": no
 *                    _PyObject_DebugMallocStats, or its text held no figures;
 *                    "none": no read completed yet), and with "ok" the
 *                    figures of _PyObject_DebugMallocStats (Objects/
 *                    obmalloc.c, the text of sys._debugmallocstats()):
 *                    pymalloc_arenas (arenas allocated current),
 *                    pymalloc_arena_bytes (arenas * bytes/arena),
 *                    pymalloc_allocated_bytes (bytes in allocated blocks),
 *                    pymalloc_available_bytes (bytes in available blocks:
 *                    free blocks of pools in use), pymalloc_unused_pool_bytes
 *                    (empty pools inside arenas), pymalloc_overhead_bytes
 *                    (pool headers, quantization, arena alignment).
 *   heap-walk types MAX | heap-walk refs MAX TOP LINE FILE
 *                    payload: "heap_walk_requested N". Arms one heap walk
 *                    (src/agent/heap_walk.h) of at most MAX objects and
 *                    replies at once; like pymalloc it runs inside the next
 *                    PyMem/PyObject malloc or calloc of a thread holding the
 *                    GIL. "refs" reports the TOP largest chains that hold
 *                    the objects allocated at LINE of FILE (the most recent
 *                    frame's file equal to FILE or ending in "/" FILE).
 *                    "err busy..." while another walk is armed or running.
 *   heap-walk-result payload: heap_walk_requested (the newest request),
 *                    heap_walk_state ("none", "armed", "running", "done",
 *                    "cancelled"), heap_walk_armed_unix_ms,
 *                    heap_walk_started_unix_ms (0 until it runs),
 *                    heap_walk_thread (gettid of the thread that ran it, 0
 *                    until then) and, once "done", the walk's lines:
 *                    walk_result ("complete", "truncated" at MAX objects,
 *                    "unsupported", "no-memory"), walk_objects,
 *                    walk_gc_objects (objects whose tp_traverse ran),
 *                    walk_module_objects (reached from sys.modules),
 *                    walk_modules, walk_threads, walk_frames,
 *                    walk_max_objects, walk_graph_ns, walk_ns,
 *                    walk_mapped_bytes (the walk's own memory, given back
 *                    when it ended); gc_lists ("read", "unavailable" when
 *                    this build's gc lists cannot be found, "collecting",
 *                    "truncated"/"not-read" at MAX objects, "no-memory"),
 *                    gc_listed (objects on the gc's lists), gc_finalized (of
 *                    those, finalized: their __del__ ran), gc_unreached
 *                    (nodes no module, frame or gc.garbage reaches) and,
 *                    once classified, gc_cycle_objects (in cycles reachable
 *                    only from each other) and gc_external_objects (held
 *                    from outside what the walk follows); for types one
 *                    line per type "type\tCOUNT\tBYTES\tNAME" (BYTES
 *                    estimated from the type's sizes: object, items, a str's
 *                    characters, a list's item array) and the same per type
 *                    of the cycle objects as "cycle\tCOUNT\tBYTES\tNAME",
 *                    then gc_cycle_untraced (cycle objects the engine does
 *                    not trace) and up to 10 allocation sites of the traced
 *                    ones, the most objects first, "cyclesite\tCOUNT\tBYTES\t
 *                    FILE:LINE" (the traceback's most recent frame);
 *                    for refs site_tracebacks,
 *                    site_traced_records, site_traced_bytes (what the engine
 *                    traces at the site), site_objects, site_object_bytes
 *                    (of those, the objects the walk reached), site_finalized
 *                    (of those, finalized and alive: resurrected), chains_total,
 *                    chains_other_objects, then per chain, largest first,
 *                    "chain\tOBJECTS\tBYTES\tLINKS\tSHARED" followed by
 *                    LINKS lines "link\tKIND\tNAME\tTYPE\tOBJECT", root
 *                    first, the site's object last. KIND: module, local
 *                    (NAME "VAR in FUNC (FILE:LINE) thread N"), gc (NAME
 *                    "garbage": the gc's garbage list), and for roots on the
 *                    gc's lists that nothing else reaches cycle, external or
 *                    unreached (not classified); then dict (the
 *                    object's __dict__), attr, key (NAME a str key, or
 *                    "<TYPE>" in a dict of more than 32 entries), key-of (the
 *                    object is a key), item, member, cell, ref (any other
 *                    reference); TYPE is the object's type as
 *                    "module.Name"; OBJECT names a module or a class. SHARED:
 *                    how many leading links are the same objects for every
 *                    object of the chain.
 *   heap-walk-cancel payload: empty; disarms a walk that has not run and
 *                    stops a running one at its next check (detach does too).
 *   malloc-trim      payload: "KEY VALUE" lines. The agent thread calls
 *                    malloc_trim(0). trim_result (its return: 1 if memory
 *                    went back to the OS, 0 if not, -1 if glibc has no
 *                    malloc_trim), rss_before_bytes, rss_after_bytes
 *                    (/proc/self/statm around the call),
 *                    malloc_free_before_bytes, malloc_free_after_bytes
 *                    (mallinfo2 fordblks: a trim returns pages, the bytes
 *                    stay free inside malloc's heap).
 *   release-scratch  payload: empty; unmaps [scratch_addr, scratch_addr +
 *                    scratch_size) of the start args, once. A second call,
 *                    or scratch_addr 0, replies "ok 0" and does nothing;
 *                    "err" if munmap failed.
 *   release-scratch ADDR SIZE (decimal)  payload: empty; unmaps a scratch
 *                    mapping a killed memtap left, only if [ADDR, ADDR+SIZE)
 *                    is mapped, page-aligned, at most 64 pages, holds
 *                    memtap_scratch_header with MEMTAP_SCRATCH_MAGIC,
 *                    total_bytes == SIZE and in_call == 0; else "err". The
 *                    host checks that the owner memtap is gone.
 *
 * Snapshot format (one record per line, fields separated by one space, the
 * last field of F lines runs to the end of the line; '\\', '\n' and '\t' in
 * names are written as "\\\\", "\\n" and "\\t"):
 *   memtap-snapshot 4
 *   mode exact|sampled
 *   sample_bytes N
 *   attached_at_unix_ms N   the session (status key of the same name): two
 *                           snapshots compare only within one session
 *   traced_bytes N          (estimate in sampled mode)
 *   traced_count N
 *   thread TID STATE NAME   one per distinct non-zero TID of the T lines,
 *                           before them: STATE is "running" (NAME is the
 *                           thread's OS name, /proc/self/task/TID/comm, read
 *                           by the agent as it formats the snapshot),
 *                           "exited" (NAME is the name an earlier snapshot
 *                           of this attach read, or empty) or "unknown" (no
 *                           /proc in the target's mount namespace; NAME
 *                           empty). NAME is escaped as F names are and may
 *                           be empty. CPython before 3.14 does not give
 *                           threading.Thread.name to the OS: a Python
 *                           thread's NAME is then the process's name.
 *   domain D LABEL          one per native module's domain the T lines
 *                           use (attach --native), before them: D is
 *                           0x4d540000 + the module's number, LABEL "native
 *                           BASENAME", escaped as F names are.
 *   T SIZE COUNT NFRAMES SAMPLES TID DOMAIN  one per distinct (thread,
 *                           traceback, domain);
 *                           SAMPLES: the live records behind SIZE and COUNT
 *                           (in sampled mode the samples the estimate rests
 *                           on); TID: the native id (gettid(), in the
 *                           target's pid namespace) of the thread that made
 *                           the allocations, 0 when unknown (a table was
 *                           full). The same frames on two threads are two T
 *                           records. DOMAIN: 0 for the PyMem allocators, else
 *                           the domain a PyTraceMalloc_Track caller gave
 *                           (389047: numpy's array data) or a native
 *                           module's (above).
 *   F LINE FILE\tFUNCTION   NFRAMES lines after each T, most recent call first
 *   end
 * Version 3 (still read by the host) has no domain lines and no DOMAIN field;
 * version 2 has no thread lines and no TID field either;
 * version 1 has no attached_at_unix_ms line and no SAMPLES field either.
 * The peak breakdown ("snapshot peak") is kept per (thread, traceback) too.
 */

#ifdef __cplusplus
}
#endif

#endif /* MEMTAP_AGENT_PROTOCOL_H */
