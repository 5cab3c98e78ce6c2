"""The snapshot store is not a way in (issue 7, item 5). Another local user
(`nobody`) plants what they can in /tmp before root runs memtap against a
real Python target: a symlink for the predictable /tmp/memtap-0, a directory
of their own or one others can write, a temp name linked to a root-owned
file, .snapshot files with made-up contents. memtap must refuse each with one
clear line and a non-zero exit, write nothing through what was planted, read
nothing planted, and a failed diff or snapshot must create no directory;
the normal path still works; gone processes' directories stay as evidence,
and only those of another boot or older than 7 days go.

The test runs in a private mount namespace with a fresh tmpfs on /tmp, so
the real default path (/tmp/memtap-0) is used without disturbing anyone
else's /tmp; where no mount namespace can be made, XDG_RUNTIME_DIR points the
store at a fresh sticky, world-writable directory instead (same rules).

Usage: snapshot_store_test.py MEMTAP PYTHON TARGETS_DIR
"""
import ctypes
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time

MEMTAP, PYTHON, TARGETS = sys.argv[1:4]
FAILURES = []
CLONE_NEWNS = 0x00020000  # <linux/sched.h>

if os.geteuid() != 0:
    print("SKIP: must run as root: the case is root's memtap meeting another user's files")
    sys.exit(77)
try:
    NOBODY = pwd.getpwnam("nobody")
except KeyError:
    print("SKIP: no user 'nobody' to plant files as")
    sys.exit(77)

with open(os.path.join(TARGETS, "parked_target.py")) as f:
    TARGET_SOURCE = f.read()
with open(MEMTAP, "rb") as f:
    MEMTAP_BYTES = f.read()


def private_tmp():
    """Moves this process into a new mount namespace with an empty tmpfs on
    /tmp. The binary and the target's source were read beforehand: the
    checkout itself may live under /tmp."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS) != 0:
        return "unshare(CLONE_NEWNS): %s" % os.strerror(ctypes.get_errno())
    for argv in (["mount", "--make-rprivate", "/"], ["mount", "-t", "tmpfs", "-o", "mode=1777", "none", "/tmp"]):
        p = subprocess.run(argv, capture_output=True, text=True)
        if p.returncode != 0:
            return "%s: %s" % (" ".join(argv), p.stderr.strip())
    return None


why_not = private_tmp() if shutil.which("mount") else "no mount(8)"
if why_not is None:
    PARENT = "/tmp"
    BASE = "/tmp/memtap-0"
    os.environ.pop("XDG_RUNTIME_DIR", None)
    os.makedirs("/tmp/bin", mode=0o755)
    MEMTAP = "/tmp/bin/memtap"
    with open(MEMTAP, "wb") as f:
        f.write(MEMTAP_BYTES)
    os.chmod(MEMTAP, 0o755)
    print("store under a private /tmp: %s" % BASE)
else:
    PARENT = tempfile.mkdtemp(prefix="memtap-store-test-")
    os.chmod(PARENT, 0o1777)  # like /tmp: anyone may create names in it
    BASE = os.path.join(PARENT, "memtap")
    os.environ["XDG_RUNTIME_DIR"] = PARENT
    print("no private /tmp (%s); store at %s through XDG_RUNTIME_DIR" % (why_not, BASE))
VICTIM = os.path.join(PARENT, "root-owned-victim")
EVIL = os.path.join(PARENT, "evil")


def run(*args, expect, stderr_has=(), stdout_has=None):
    """Runs memtap; expect is an exit code, or "nonzero". Errors must be one
    'memtap: error:' line holding every string in stderr_has."""
    p = subprocess.run([MEMTAP] + [str(a) for a in args], capture_output=True, text=True, timeout=60)
    label = "memtap " + " ".join(str(a) for a in args)
    problems = []
    if (expect == "nonzero" and p.returncode == 0) or (expect != "nonzero" and p.returncode != expect):
        problems.append("exit %d, expected %s" % (p.returncode, expect))
    if p.returncode != 0:
        lines = [l for l in p.stderr.splitlines() if l.strip()]
        if len(lines) != 1 or not lines[0].startswith("memtap: error: "):
            problems.append("stderr is not one 'memtap: error:' line: %r" % p.stderr)
    for needle in (stderr_has,) if isinstance(stderr_has, str) else stderr_has:
        if needle not in p.stderr:
            problems.append("stderr lacks %r: %r" % (needle, p.stderr))
    if stdout_has and stdout_has not in p.stdout:
        problems.append("stdout lacks %r: %r" % (stdout_has, p.stdout))
    print("%-64s exit %d %s" % (label[-64:], p.returncode, "OK" if not problems else "FAIL"))
    for problem in problems:
        FAILURES.append("%s: %s" % (label, problem))
    return p


def check(ok, what):
    print("%-64s %s" % (what[:64], "OK" if ok else "FAIL"))
    if not ok:
        FAILURES.append(what)


def as_nobody(fn):
    """Runs fn in a child that is user nobody, as another local user would."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setgroups([])
            os.setgid(NOBODY.pw_gid)
            os.setuid(NOBODY.pw_uid)
            os.umask(0)
            fn()
            code = 0
        except BaseException as e:  # report, never fall back into the test's own loop
            sys.stderr.write("as nobody: %r\n" % e)
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, "planting as nobody failed"


def start_time(pid):
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()[19]  # field 22 (proc(5)), 3 is the first after ")"


def start_target():
    p = subprocess.Popen([PYTHON, "-u", "-c", TARGET_SOURCE, "sleep"], stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    assert line.startswith("ready"), "target did not start: %r" % line
    return p


def stop(p):
    p.kill()
    p.wait()


def tree(path):
    """Every path under `path` with its owner, mode and (for files) contents, without following links."""
    found = {}
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            full = os.path.join(root, name)
            st = os.lstat(full)
            body = None
            if os.path.islink(full):
                body = "-> " + os.readlink(full)
            elif os.path.isfile(full):
                with open(full, "rb") as f:
                    body = f.read()
            found[full] = (st.st_uid, st.st_mode, body)
    return found


def remove(path):
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)


FAKE = ("memtap-snapshot 1\nmode exact\nsample_bytes 0\ntraced_bytes 999999999\ntraced_count 1\n"
        "T 999999999 1 1\nF 1 /planted/by/nobody.py\tplanted\nend\n")
PRECIOUS = b"root's own data\n"

target = start_target()
pid = target.pid
instance = "%d-%s" % (pid, start_time(pid))
try:
    if run("attach", pid, expect=0, stdout_has="attached to process").returncode != 0:
        print("SKIP: cannot attach here")
        sys.exit(77)

    def plant_in(directory, mode):
        """As nobody: the per-process directory, a temp name root's memtap
        would write through to the victim, and a made-up snapshot."""
        def plant():
            proc_dir = os.path.join(directory, instance)
            if not os.path.isdir(proc_dir):
                os.mkdir(proc_dir)
                os.chmod(proc_dir, mode)
            os.symlink(VICTIM, os.path.join(proc_dir, "s1.snapshot.tmp"))  # the old code's temp name
            with open(os.path.join(proc_dir, "planted.snapshot"), "w") as f:
                f.write(FAKE)
        return plant

    def expect_refused(cause, refused_path):
        """snapshot and diff both refuse the store; nothing planted is written or read."""
        with open(VICTIM, "wb") as f:
            f.write(PRECIOUS)
        os.chmod(VICTIM, 0o600)
        before = tree(PARENT)
        run("snapshot", pid, "s1", expect="nonzero",
            stderr_has=("refusing snapshot store %s" % refused_path, cause, "remove it"))
        run("diff", pid, "planted", "now", expect="nonzero",
            stderr_has=("refusing snapshot store %s" % refused_path, cause))
        with open(VICTIM, "rb") as f:
            check(f.read() == PRECIOUS, "root-owned file behind a planted link is unchanged (%s)" % cause)
        check(tree(PARENT) == before, "nothing planted was written to (%s)" % cause)

    # 1. /tmp/memtap-0 is nobody's symlink to nobody's directory.
    def plant_symlink():
        os.makedirs(EVIL, mode=0o777)
        os.symlink(EVIL, BASE)
    as_nobody(plant_symlink)
    as_nobody(plant_in(EVIL, 0o777))
    expect_refused("symbolic link", BASE)
    remove(BASE)
    remove(EVIL)

    # 2. /tmp/memtap-0 is a real directory, made and owned by nobody (mode 0755).
    def plant_dir():
        os.mkdir(BASE, 0o755)
    as_nobody(plant_dir)
    as_nobody(plant_in(BASE, 0o755))
    expect_refused("belongs to uid %d" % NOBODY.pw_uid, BASE)
    remove(BASE)

    # 3. The base is root's, but its per-process directory is writable by others.
    os.mkdir(BASE, 0o711)  # others may pass through, not list or write
    os.mkdir(os.path.join(BASE, instance), 0o700)
    os.chmod(os.path.join(BASE, instance), 0o777)
    as_nobody(plant_in(BASE, 0o777))
    expect_refused("writable by group or others (mode 0777)", os.path.join(BASE, instance))
    remove(BASE)

    # 4. A failed diff (or snapshot) creates no directory.
    run("diff", pid, "nope", "now", expect=2, stderr_has="no snapshot named 'nope'")
    run("diff", pid, "a", "b", expect=2, stderr_has="no snapshot named 'a'")
    run("diff", 4194000, "a", "b", expect=3, stderr_has="no process with PID 4194000")
    run("snapshot", 4194000, expect=3)
    check(not os.path.lexists(BASE), "failed diffs made no store directory")

    # 5. The normal path: private directories and files, readable back.
    run("snapshot", pid, expect=0, stdout_has="s1")
    run("snapshot", pid, "after", expect=0, stdout_has="after")
    run("diff", pid, "s1", "after", expect=0, stdout_has="grouped by lineno")
    proc_dir = os.path.join(BASE, instance)
    for path, mode in ((BASE, 0o700), (proc_dir, 0o700), (os.path.join(proc_dir, "s1.snapshot"), 0o600)):
        st = os.lstat(path)
        check(st.st_uid == 0 and (st.st_mode & 0o7777) == mode, "%s is root's, mode %o" % (path, mode))
    check(sorted(f for f in os.listdir(proc_dir) if f.endswith(".snapshot")) == ["after.snapshot", "s1.snapshot"],
          "the store holds exactly the two snapshots")

    # 6. Files planted inside root's own store are not read: nobody's, writable by others, a symlink.
    theirs = os.path.join(proc_dir, "theirs.snapshot")
    with open(theirs, "w") as f:
        f.write(FAKE)
    os.chown(theirs, NOBODY.pw_uid, NOBODY.pw_gid)
    run("diff", pid, "theirs", "now", expect="nonzero",
        stderr_has=("refusing snapshot file %s" % theirs, "belongs to uid %d" % NOBODY.pw_uid))
    writable = os.path.join(proc_dir, "writable.snapshot")
    with open(writable, "w") as f:
        f.write(FAKE)
    os.chmod(writable, 0o666)
    run("diff", pid, "writable", "now", expect="nonzero", stderr_has=("refusing snapshot file", "mode 0666"))
    with open(VICTIM, "w") as f:
        f.write(FAKE)
    os.symlink(VICTIM, os.path.join(proc_dir, "linked.snapshot"))
    run("diff", pid, "linked", "now", expect="nonzero", stderr_has=("refusing snapshot file", "symbolic link"))
    run("diff", pid, "s1", "after", expect=0, stdout_has="grouped by lineno")  # the store itself is fine

    # 7. Retention: the directory of a process that exited, and of a reused
    #    PID (the live target's PID with another start time), are evidence and
    #    stay; one from another boot, and one whose newest file is 8 days old, go.
    other = start_target()
    other_dir = os.path.join(BASE, "%d-%s" % (other.pid, start_time(other.pid)))
    run("attach", other.pid, expect=0)
    run("snapshot", other.pid, expect=0)
    run("detach", other.pid, expect=0)
    stop(other)
    reused_dir = os.path.join(BASE, "%d-1" % pid)
    os.mkdir(reused_dir, 0o700)
    with open(os.path.join(reused_dir, "old.snapshot"), "w") as f:
        f.write(FAKE)
    other_boot_dir = os.path.join(BASE, "4190001-5")
    os.mkdir(other_boot_dir, 0o700)
    with open(os.path.join(other_boot_dir, ".boot_id"), "w") as f:
        f.write("00000000-0000-0000-0000-000000000000\n")
    aged_dir = os.path.join(BASE, "4190002-5")
    os.mkdir(aged_dir, 0o700)
    with open("/proc/sys/kernel/random/boot_id") as src, open(os.path.join(aged_dir, ".boot_id"), "w") as f:
        f.write(src.read())
    with open(os.path.join(aged_dir, "s1.snapshot"), "w") as f:
        f.write(FAKE)
    eight_days_ago = time.time() - 8 * 24 * 3600
    for name in os.listdir(aged_dir) + [""]:
        os.utime(os.path.join(aged_dir, name), (eight_days_ago, eight_days_ago))
    check(os.path.isdir(other_dir), "the exited process's directory exists before cleanup")
    run("snapshot", pid, "third", expect=0)
    check(os.path.isfile(os.path.join(other_dir, "s1.snapshot")), "the exited process's directory is kept")
    run("diff", other.pid, "s1", "s1", expect=0, stdout_has="gone")
    check(os.path.isdir(reused_dir), "the reused PID's directory is kept")
    check(not os.path.lexists(other_boot_dir), "another boot's directory was removed")
    check(not os.path.lexists(aged_dir), "a directory whose newest file is 8 days old was removed")
    check(os.path.isfile(os.path.join(proc_dir, "third.snapshot")), "the live process's store is kept")

    # 8. Not attached: diff and snapshot fail and create nothing.
    run("detach", pid, expect=0)
    remove(BASE)
    run("diff", pid, "now", "now", expect=7, stderr_has="not attached")
    run("diff", pid, "s1", "now", expect=2, stderr_has="no snapshot named 's1'")
    run("snapshot", pid, expect=7, stderr_has="not attached")
    run("snapshot", pid, "named", expect=7, stderr_has="not attached")
    check(not os.path.lexists(BASE), "failed commands while not attached made no store directory")
    check(target.poll() is None, "the target is still running")
finally:
    subprocess.run([MEMTAP, "detach", str(pid)], capture_output=True, timeout=60)
    stop(target)
    if PARENT != "/tmp":
        shutil.rmtree(PARENT, ignore_errors=True)

if FAILURES:
    print("\n".join(["FAILED:"] + FAILURES))
    sys.exit(1)
print("the snapshot store refused every planted path and kept working")
