"""A process whose memory a native library takes from libc, for
tests/integration/native_test.py. argv[1]: the library. Prints "ready PID",
then one answer line per command on stdin:
  load            load the library (ctypes.PyDLL: calls keep the GIL, as a C
                  extension's do, so the Python line is known)
  grow K SIZE     K malloc blocks of SIZE bytes
  map K SIZE      K anonymous mmaps of SIZE bytes
  release         free and unmap them all
  got             the library's GOT slot for malloc and the mapping it points into
"""
import ctypes
import os
import subprocess
import sys

LIBRARY = sys.argv[1]
lib = None


def mapping_of(address):
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split()
            start, end = (int(x, 16) for x in fields[0].split("-"))
            if start <= address < end:
                return fields[5] if len(fields) > 5 else "[anonymous]"
    return "[unmapped]"


def got_slot(symbol):
    out = subprocess.run(["readelf", "-rW", LIBRARY], stdout=subprocess.PIPE, universal_newlines=True).stdout
    offset = next(int(f[0], 16) for f in (line.split() for line in out.splitlines())
                  if len(f) >= 5 and f[2] in ("R_X86_64_JUMP_SLOT", "R_X86_64_GLOB_DAT") and f[4].split("@")[0] == symbol)
    real = os.path.realpath(LIBRARY)
    with open("/proc/self/maps") as f:
        base = next(int(line.split()[0].split("-")[0], 16) for line in f
                    if line.split()[-1] == real and int(line.split()[2], 16) == 0)
    return ctypes.c_uint64.from_address(base + offset).value


print("ready %d" % os.getpid(), flush=True)
for line in sys.stdin:
    words = line.split()
    if not words:
        continue
    if words[0] == "load":
        lib = ctypes.PyDLL(LIBRARY)
        lib.grow.argtypes = lib.grow_mapped.argtypes = [ctypes.c_int, ctypes.c_size_t]
        print("loaded", flush=True)
    elif words[0] == "grow":
        print("grown %d" % lib.grow(int(words[1]), int(words[2])), flush=True)  # native_test.py: GROW_LINE
    elif words[0] == "map":
        print("mapped %d" % lib.grow_mapped(int(words[1]), int(words[2])), flush=True)  # native_test.py: MAP_LINE
    elif words[0] == "release":
        lib.release()
        print("released", flush=True)
    elif words[0] == "got":
        value = got_slot("malloc")
        print("got %d %s" % (value, mapping_of(value)), flush=True)
    elif words[0] == "quit":
        break
