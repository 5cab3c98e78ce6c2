"""agent.core: start, status, hooks, detach and re-attach, argument checks.

Usage: python agent_core_test.py AGENT_SO
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agent_client as ac  # noqa: E402

STATUS_KEYS = [
    "python", "mode", "sample_bytes", "frames", "allocations_seen", "traced_bytes",
    "traced_count", "malloc_free_bytes", "agent_bytes", "hooks", "attached_at_unix_ms",
    "rss_at_attach_bytes",
]


def own_rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def attach_cycle(agent, module, check_growth, threads):
    fds = ac.fd_count()
    before = ac.get_allocators()
    started_ms = time.time() * 1000
    rss_before = own_rss()
    rc = agent.start(agent.make_args(module=module))
    ac.check(rc == ac.START_OK, "start(%r) returned %d" % (module, rc))
    ac.check(ac.get_allocators() != before, "hooks not installed")
    st = agent.status()
    for key in STATUS_KEYS:
        ac.check(key in st, "status key %s missing: %r" % (key, st))
    ac.check(st["python"] == "%d.%d.%d" % sys.version_info[:3], "python %r" % st["python"])
    ac.check(st["hooks"] == "installed", "hooks %r" % st["hooks"])
    # The session: set by the agent thread once its hooks are live (start
    # returns before that; status answers only after it).
    ac.check(started_ms - 1000 <= int(st["attached_at_unix_ms"]) <= time.time() * 1000 + 1000,
             "attached_at_unix_ms %s, started at %d" % (st["attached_at_unix_ms"], started_ms))
    ac.check(rss_before // 2 <= int(st["rss_at_attach_bytes"]) <= own_rss() * 2,
             "rss_at_attach_bytes %s, own RSS %d" % (st["rss_at_attach_bytes"], rss_before))
    if check_growth:
        seen = int(st["allocations_seen"])
        keep = [str(i) * 3 for i in range(20000)]
        st2 = agent.status()
        ac.check(int(st2["allocations_seen"]) >= seen + 20000,
                 "allocations_seen %s -> %s" % (seen, st2["allocations_seen"]))
        del keep
    again = agent.start(agent.make_args(module=module))
    ac.check(again == ac.START_ALREADY_RUNNING, "second start returned %d" % again)
    agent.detach()
    ac.check(not os.path.exists(agent.socket_path), "socket file left behind")
    ac.check(ac.get_allocators() == before, "allocators not restored")
    ac.check(ac.wait_until(lambda: ac.thread_count() == threads),
             "threads %d, expected %d" % (ac.thread_count(), threads))
    ac.check(ac.fd_count() == fds, "fds %d, expected %d" % (ac.fd_count(), fds))


def refused_as_nobody(agent):
    """A peer with another uid: the 0600 socket refuses it; with the mode
    opened up, SO_PEERCRED still does."""
    if os.getuid() != 0:
        return
    rc = agent.start(agent.make_args())
    ac.check(rc == ac.START_OK, "start returned %d" % rc)
    mode = os.stat(agent.socket_path).st_mode & 0o777
    ac.check(mode == 0o600, "socket mode %o" % mode)
    os.chmod(agent.dir, 0o755)
    for open_mode in (None, 0o666):
        if open_mode is not None:
            os.chmod(agent.socket_path, open_mode)
        pid = os.fork()
        if pid == 0:
            code = 3
            try:
                os.setgid(65534)
                os.setuid(65534)
                try:
                    ok, msg = agent.request("status")
                    code = 0 if not ok else 2
                except PermissionError:
                    code = 0
                except ConnectionError:
                    code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        ac.check(os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0,
                 "uid 65534 was served (mode %r, status %r)" % (open_mode, status))
    os.chmod(agent.socket_path, 0o600)
    agent.detach()


def main():
    agent = ac.Agent(sys.argv[1])
    module = ac.libpython_path()
    original = ac.get_allocators()
    threads = ac.thread_count()

    # Bad arguments never touch the interpreter.
    args = agent.make_args()
    args.struct_size -= 8
    ac.check(agent.start(args) == ac.START_BAD_ARGS, "wrong struct_size accepted")
    args = agent.make_args()
    args.protocol_version = 99
    ac.check(agent.start(args) == ac.START_BAD_ARGS, "wrong protocol_version accepted")
    args = agent.make_args(frames=0)
    ac.check(agent.start(args) == ac.START_BAD_ARGS, "frames=0 accepted")
    args = agent.make_args(mode=7)
    ac.check(agent.start(args) == ac.START_BAD_ARGS, "mode=7 accepted")
    args = agent.make_args(module="/nonexistent/libpython9.9.so")
    ac.check(agent.start(args) == ac.START_NO_PYTHON, "unloaded module accepted")
    ac.check(ac.get_allocators() == original, "a failed start changed the allocators")
    ac.check(not os.path.exists(agent.socket_path), "a failed start left a socket")
    # NO_PYTHON is decided on the agent thread, which writes the status word
    # and then exits: wait for it, or it counts as the baseline's thread.
    ac.check(ac.wait_until(lambda: ac.thread_count() == threads),
             "the failed start's thread did not exit: %d threads, expected %d"
             % (ac.thread_count(), threads))

    # The global scope ("") works for static and shared builds alike; the
    # explicit libpython path is what the host passes for shared builds.
    modules = [""] + ([module] if module else [])
    for m in modules:
        attach_cycle(agent, m, check_growth=True, threads=threads)
    for i in range(20):
        attach_cycle(agent, modules[i % len(modules)], check_growth=(i % 5 == 0),
                     threads=threads)

    refused_as_nobody(agent)
    ac.check(ac.get_allocators() == original, "allocators differ at the end")
    os.rmdir(agent.dir)
    print("ok: %s, modules %r" % (sys.version.split()[0], modules))


if __name__ == "__main__":
    main()
