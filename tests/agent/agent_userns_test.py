"""agent.userns: the agent in a rootless user namespace (`unshare --user
--map-root-user` run by nobody), its clients outside, no ptrace.

Checks the premise of the peer check (src/agent/control.cpp, peerAllowed):
SO_PEERCRED shows host root to the agent as the overflow uid, so root is
refused when the host passes its own euid (peer_uid 0, what memtap did) and
served when it passes the overflow uid flagged MEMTAP_PEER_UNMAPPED (what
attach::peerIdentityInTargetOrThrow computes); and another unmapped user,
who also reads as the overflow uid, is kept out by the socket's mode 0600.

Usage (as root): python3 agent_userns_test.py AGENT_SO
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agent_client as ac  # noqa: E402

NOBODY = 65534
STRANGER = 1234  # a host uid with no mapping in the namespace, not nobody
ROOTLESS = ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups",
            "unshare", "--user", "--map-root-user"]

# Runs inside the namespace as its root (host nobody): start the agent with
# the peer identity given on the command line, serve until stdin closes.
CHILD = r"""
import os, sys
sys.path.insert(0, sys.argv[1])
import agent_client as ac
agent = ac.Agent(os.path.join(sys.argv[1], "agent.so"))
os.chmod(agent.dir, 0o755)  # only the socket's own mode stands in the way
args = agent.make_args(module=ac.libpython_path())
args.peer_uid = int(sys.argv[2])
args.peer_flags = int(sys.argv[3])
rc = agent.start(args)
print("ready %d %d %s" % (rc, os.getuid(), agent.socket_path), flush=True)
sys.stdin.readline()
print("socket_left %d" % os.path.exists(agent.socket_path), flush=True)
"""


def request(path, command):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    try:
        s.connect(path)
        s.sendall((command + "\n").encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    return data.partition(b"\n")[0].decode()


def as_stranger(path):
    """What a connect by another unmapped host uid gets: 'refused' or a reply head."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        result = "error"
        try:
            os.setgroups([])
            os.setgid(STRANGER)
            os.setuid(STRANGER)
            try:
                result = request(path, "status")
            except PermissionError:
                result = "refused"
        finally:
            os.write(w, result.encode())
            os._exit(0)
    os.close(w)
    out = os.read(r, 256).decode()
    os.close(r)
    os.waitpid(pid, 0)
    return out


def run_child(share, peer_uid, flags):
    child = subprocess.Popen(ROOTLESS + [sys.executable, "-c", CHILD, share, str(peer_uid), str(flags)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, universal_newlines=True)
    words = child.stdout.readline().split()
    ac.check(len(words) == 4 and words[0] == "ready", "child did not start: %r" % words)
    ac.check(int(words[1]) == ac.START_OK, "agent start in the namespace: %s" % words[1])
    ac.check(words[2] == "0", "child is uid %s in its namespace, want 0" % words[2])
    return child, words[3]


def finish(child):
    out, _ = child.communicate("\n", timeout=30)
    return out


def main():
    if os.geteuid() != 0:
        print("SKIP: needs root (to be the unmapped host user and to drop to others)")
        sys.exit(77)
    if shutil.which("setpriv") is None or shutil.which("unshare") is None:
        print("SKIP: no setpriv(1) or unshare(1)")
        sys.exit(77)
    probe = subprocess.run(ROOTLESS + ["true"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if probe.returncode != 0:
        print("SKIP: no unprivileged user namespaces here: %s" % probe.stderr.decode().strip())
        sys.exit(77)
    with open("/proc/sys/kernel/overflowuid") as f:
        overflow = int(f.read())

    share = tempfile.mkdtemp(prefix="memtap-userns-")
    try:
        os.chmod(share, 0o755)
        shutil.copy(sys.argv[1], os.path.join(share, "agent.so"))
        shutil.copy(os.path.join(os.path.dirname(os.path.abspath(__file__)), "agent_client.py"), share)

        # What memtap passed before: its own euid. Root is refused.
        child, path = run_child(share, 0, 0)
        try:
            head = request(path, "status")
            ac.check(head == "err permission denied",
                     "root with peer_uid 0 across the namespace got %r, want permission denied" % head)
        finally:
            finish(child)  # the agent removes its socket at exit
            shutil.rmtree(os.path.dirname(path), ignore_errors=True)

        # What memtap passes now: the overflow uid, flagged unmapped.
        child, path = run_child(share, overflow, ac.PEER_UNMAPPED)
        try:
            head = request(path, "status")
            ac.check(head.startswith("ok "), "root with the overflow uid got %r" % head)
            st = os.stat(path)
            ac.check(st.st_uid == NOBODY and (st.st_mode & 0o777) == 0o600,
                     "socket owner %d mode %o" % (st.st_uid, st.st_mode & 0o777))
            stranger = as_stranger(path)
            ac.check(stranger == "refused",
                     "host uid %d (also unmapped, also the overflow uid to the agent) got %r"
                     % (STRANGER, stranger))
            head = request(path, "detach")
            ac.check(head == "ok 0", "detach from root: %r" % head)
        finally:
            out = finish(child)
            shutil.rmtree(os.path.dirname(path), ignore_errors=True)
        ac.check("socket_left 0" in out, "socket left after detach: %r" % out)
        print("rootless namespace: root refused as peer_uid 0, served as the overflow uid %d "
              "(unmapped); uid %d kept out by the socket's mode" % (overflow, STRANGER))
    finally:
        shutil.rmtree(share, ignore_errors=True)


if __name__ == "__main__":
    main()
