"""The agent's per-version layout table (src/agent/python_layouts.h) against
offsetof() on this interpreter's own headers.

Run with the interpreter under test: python test_layouts.py PROBE_SO SOURCE_DIR.
Compiles layout_offsets.c with sysconfig's include directory (internal headers
with Py_BUILD_CORE), runs it, and compares every field with what the probe
library reports from the agent's table. Exits 77 when the headers are not
installed (e.g. Debian's python3.11 without python3-dev)."""

import ctypes
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile

SKIP = 77


def agent_table(probe_path, minor):
    lib = ctypes.CDLL(probe_path)
    buf = ctypes.create_string_buffer(8192)
    n = lib.probe_layout(minor, buf, len(buf))
    if n <= 0:
        sys.exit(f"FAIL: the agent has no layout for 3.{minor} (probe_layout returned {n})")
    return dict(line.split() for line in buf.value.decode().splitlines())


def header_table(source_dir):
    include = sysconfig.get_paths()["include"]
    if not os.path.exists(os.path.join(include, "Python.h")):
        print(f"SKIP: no Python.h under {include}")
        sys.exit(SKIP)
    if sys.version_info >= (3, 11) and not os.path.exists(
        os.path.join(include, "internal", "pycore_frame.h")
    ):
        print(f"SKIP: no internal headers under {include}")
        sys.exit(SKIP)
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        print("SKIP: no C compiler")
        sys.exit(SKIP)
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "layout_offsets")
        subprocess.run(
            [cc, "-std=c11", "-w", "-I", include,
             os.path.join(source_dir, "layout_offsets.c"), "-o", exe],
            check=True,
        )
        out = subprocess.check_output([exe], universal_newlines=True)  # 3.6: no capture_output
    return dict(line.split() for line in out.splitlines())


def main():
    probe_path, source_dir = sys.argv[1], sys.argv[2]
    if sys.version_info[0] != 3:
        sys.exit("FAIL: not CPython 3")
    agent = agent_table(probe_path, sys.version_info[1])
    headers = header_table(source_dir)
    bad = []
    for name in sorted(set(agent) | set(headers)):
        a, h = agent.get(name), headers.get(name)
        if a != h:
            bad.append(f"  {name}: agent {a}, headers {h}")
    version = sys.version.split()[0]
    if bad:
        print(f"FAIL: layout of {version} ({sys.executable}) differs from its headers:")
        print("\n".join(bad))
        return 1
    print(f"ok: {len(agent)} fields of {version} ({sys.executable}) match offsetof()")
    return 0


if __name__ == "__main__":
    sys.exit(main())
