"""agent.threads: each traced allocation carries the native id of the thread
that made it, and the snapshot names the threads (protocol.h, format 3).

Threads named through prctl(PR_SET_NAME) allocate known, different amounts;
the snapshot's T lines must attribute each amount to the thread's
threading.get_native_id(), and its thread lines must carry the names. Also:
threads run one after another (a reused stack must not keep the previous
thread's cached id), a thread that exited between two snapshots keeps its
name and is marked exited, and a forked child's thread does not keep its
parent's id (engineForkChild).

Usage: python agent_threads_test.py AGENT_SO
"""
import ctypes
import gc
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agent_client as ac  # noqa: E402

THIS_FILE = os.path.abspath(__file__)
PR_SET_NAME = 15  # linux/prctl.h
SYS_GETTID = 186  # x86-64 arch/x86/entry/syscalls/syscall_64.tbl
BLOCK = 10000
MIB = 1 << 20

libc = ctypes.CDLL(None, use_errno=True)


def native_id():
    # threading.get_native_id() is 3.8+; the syscall gives the same number.
    if hasattr(threading, "get_native_id"):
        return threading.get_native_id()
    return libc.syscall(SYS_GETTID)


def set_os_name(name):
    libc.prctl(PR_SET_NAME, ctypes.c_char_p(name.encode()), 0, 0, 0)


def allocate(nbytes):
    return [bytes(BLOCK) for _ in range(nbytes // BLOCK)]  # THREAD ALLOC


ALLOC_LINE = allocate.__code__.co_firstlineno + 1


def bytes_by_thread(traces):
    """{tid: bytes} of the allocation line."""
    out = {}
    for size, _, frames, tid in traces:
        if frames and frames[0][0] == ALLOC_LINE and os.path.abspath(frames[0][1]) == THIS_FILE:
            out[tid] = out.get(tid, 0) + size
    return out


def snapshot(agent):
    ok, text = agent.request("snapshot")
    ac.check(ok, "snapshot refused: %s" % text)
    return ac.parse_snapshot_threads(text)


def named_threads(agent):
    """Four named threads alive at the snapshot, each holding (i+1) * 2 MiB."""
    kept = {}
    ready = threading.Barrier(5)
    done = threading.Event()

    def worker(i):
        set_os_name("mt-worker-%d" % i)
        kept[native_id()] = (i, allocate((i + 1) * 2 * MIB))
        ready.wait()
        done.wait()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    ready.wait()
    header, traces, names = snapshot(agent)
    done.set()
    for t in threads:
        t.join()
    got = bytes_by_thread(traces)
    for tid, (i, data) in kept.items():
        want = sum(sys.getsizeof(b) for b in data)
        ac.check(abs(got.get(tid, 0) - want) <= 0.02 * want,
                 "thread %d (worker %d): %d bytes in the snapshot, allocated %d; snapshot has %r"
                 % (tid, i, got.get(tid, 0), want, got))
        ac.check(names.get(tid) == ("running", "mt-worker-%d" % i),
                 "thread %d: %r, wanted mt-worker-%d" % (tid, names.get(tid), i))
    strays = set(got) - set(kept)
    ac.check(not strays, "the line is attributed to threads that did not run it: %r" % sorted(strays))
    # The main thread is named too: the process's own name.
    main_tid = native_id()
    with open("/proc/self/task/%d/comm" % main_tid) as f:
        comm = f.read().strip()
    data = allocate(MIB)
    _, traces, names = snapshot(agent)
    ac.check(bytes_by_thread(traces).get(main_tid, 0) >= MIB * 0.95, "main thread's MiB not under its tid")
    ac.check(names.get(main_tid) == ("running", comm), "main thread %r, comm %r" % (names.get(main_tid), comm))
    del data, kept
    print("named threads: %s" % ", ".join("%d: %d" % (t, b) for t, b in sorted(got.items())))


def sequential_threads(agent):
    """Threads one after another: glibc reuses a joined thread's stack (and
    static TLS block) for the next, whose id must still be its own."""
    kept = []

    def worker(i):
        set_os_name("mt-seq-%d" % i)
        kept.append((native_id(), allocate(MIB // 2)))

    for i in range(6):
        t = threading.Thread(target=worker, args=(i,))
        t.start()
        t.join()
    _, traces, names = snapshot(agent)
    got = bytes_by_thread(traces)
    for tid, data in kept:
        want = sum(sys.getsizeof(b) for b in data)
        ac.check(abs(got.get(tid, 0) - want) <= 0.02 * want,
                 "sequential thread %d: %d bytes, allocated %d (snapshot %r)" % (tid, got.get(tid, 0), want, got))
        # They have all exited: with no earlier snapshot to name them.
        ac.check(names.get(tid, ("?",))[0] == "exited", "thread %d: %r" % (tid, names.get(tid)))
    del kept


def exited_keeps_name(agent):
    """A thread named in one snapshot and gone by the next keeps its name."""
    kept = []
    go_on = threading.Event()
    ready = threading.Event()

    def worker():
        set_os_name("mt-short")
        kept.append((native_id(), allocate(MIB)))
        ready.set()
        go_on.wait()

    t = threading.Thread(target=worker)
    t.start()
    ready.wait()
    tid = kept[0][0]
    _, _, names = snapshot(agent)
    ac.check(names.get(tid) == ("running", "mt-short"), "alive: %r" % (names.get(tid),))
    go_on.set()
    t.join()
    _, traces, names = snapshot(agent)
    ac.check(names.get(tid) == ("exited", "mt-short"), "after exit: %r" % (names.get(tid),))
    ac.check(bytes_by_thread(traces).get(tid, 0) >= MIB * 0.95, "its memory is still listed under it")
    del kept


def forked_child(agent, module):
    """The main thread cached its id; a child of fork() continues on that
    thread under its own pid, and an agent started in the child must say so."""
    data = allocate(MIB)  # caches the main thread's id in the parent
    parent_tid = native_id()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            agent.socket_path = os.path.join(agent.dir, "child.sock")
            rc = agent.start(agent.make_args(mode=ac.MODE_EXACT, frames=2, module=module))
            if rc == ac.START_OK:
                child_data = allocate(MIB)
                _, traces, _ = snapshot(agent)
                got = bytes_by_thread(traces)
                agent.detach()
                if set(got) == {os.getpid()}:
                    code = 0
                else:
                    sys.stderr.write("FAIL: child's allocations under %r, child pid %d, parent tid %d\n"
                                     % (got, os.getpid(), parent_tid))
                del child_data
            else:
                sys.stderr.write("FAIL: start in the child returned %d\n" % rc)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    ac.check(os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, "forked child failed (%d)" % status)
    del data


def main():
    agent = ac.Agent(sys.argv[1])
    module = ac.libpython_path()
    original = ac.get_allocators()
    rc = agent.start(agent.make_args(mode=ac.MODE_EXACT, frames=2, module=module))
    ac.check(rc == ac.START_OK, "start returned %d" % rc)
    if agent.status().get("frame_capture") != "yes":
        agent.detach()
        print("frame capture unavailable on %s: skipping" % sys.version.split()[0])
        sys.exit(ac.SKIP)
    gc.collect()
    named_threads(agent)
    sequential_threads(agent)
    exited_keeps_name(agent)
    forked_child(agent, module)
    agent.detach()
    ac.check(ac.get_allocators() == original, "allocators differ at the end")
    for name in os.listdir(agent.dir):
        os.unlink(os.path.join(agent.dir, name))
    os.rmdir(agent.dir)
    print("ok: %s" % sys.version.split()[0])


if __name__ == "__main__":
    main()
