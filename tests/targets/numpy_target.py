"""A numpy-holding process for tests/integration/numpy_test.py.

Prints "ready PID", then takes one command per line on stdin and answers
one line:
  import          import numpy (after the attach, to test a late module)
  alloc N K       keep K arrays of N float64 each (array data: N * 8 bytes)
  free            drop them
  got             the value of _multiarray_umath's GOT slot for
                  PyTraceMalloc_Track, and which mapping it points into
  quit
"""
import ctypes
import os
import subprocess
import sys

held = []
numpy = None


def mapping_of(address):
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split()
            start, end = (int(x, 16) for x in fields[0].split("-"))
            if start <= address < end:
                return fields[5] if len(fields) > 5 else "[anonymous]"
    return "[unmapped]"


def got_slot():
    """(slot address, value) of the JUMP_SLOT relocation for PyTraceMalloc_Track."""
    path = numpy.core._multiarray_umath.__file__
    out = subprocess.run(["readelf", "-rW", path], stdout=subprocess.PIPE, universal_newlines=True).stdout
    offset = None
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[2] == "R_X86_64_JUMP_SLOT" and fields[4] == "PyTraceMalloc_Track":
            offset = int(fields[0], 16)
    base = None
    real = os.path.realpath(path)
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 5 and fields[5] == real and int(fields[2], 16) == 0:
                base = int(fields[0].split("-")[0], 16)
                break
    slot = base + offset
    return slot, ctypes.c_uint64.from_address(slot).value


def allocate(n, k):
    for _ in range(k):
        held.append(numpy.zeros((n,)))  # numpy_test.py: the allocating line (zeros is C, ones is Python)


print("ready %d" % os.getpid(), flush=True)
for line in sys.stdin:
    words = line.split()
    if not words:
        continue
    if words[0] == "import":
        import numpy
        import numpy.core._multiarray_umath
        print("imported %s" % numpy.__version__, flush=True)
    elif words[0] == "alloc":
        allocate(int(words[1]), int(words[2]))
        print("allocated", flush=True)
    elif words[0] == "free":
        held.clear()
        print("freed", flush=True)
    elif words[0] == "got":
        slot, value = got_slot()
        real = ctypes.cast(ctypes.pythonapi.PyTraceMalloc_Track, ctypes.c_void_p).value
        print("got %d %d %s %d" % (slot, value, mapping_of(value), real), flush=True)
    elif words[0] == "quit":
        break
