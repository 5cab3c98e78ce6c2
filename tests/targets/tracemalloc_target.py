"""A target that starts and stops tracemalloc on command, for the hook-chain
test (memtap's hooks cut out by tracemalloc.stop(), or wrapped by
tracemalloc.start()).

  python tracemalloc_target.py   prints "ready", then obeys stdin lines, each
                                 answered with one line:
    tm_start / tm_stop   tracemalloc.start() / tracemalloc.stop()      -> done
    burst                keep 5000 bytes(1000) from the BURST line        -> done
    free                 drop what burst kept                          -> done
    allocators           the three PyMem_GetAllocator structs, as hex  -> the line
    tm_check             start tracemalloc, trace a new object, stop   -> "tm ok" / "tm broken ..."
"""
import ctypes
import gc
import sys
import tracemalloc

KEPT = []


class PyMemAllocatorEx(ctypes.Structure):
    _fields_ = [(name, ctypes.c_void_p) for name in ("ctx", "malloc", "calloc", "realloc", "free")]


def allocators():
    get = ctypes.pythonapi.PyMem_GetAllocator
    get.restype = None
    get.argtypes = [ctypes.c_int, ctypes.POINTER(PyMemAllocatorEx)]
    out = []
    for domain in range(3):
        a = PyMemAllocatorEx()
        get(domain, ctypes.byref(a))
        out.append(",".join("%x" % (getattr(a, f) or 0) for f, _ in a._fields_))
    return " ".join(out)


def burst():
    KEPT.append([bytes(1000) for _ in range(5000)])  # BURST


def tm_check():
    tracemalloc.start()
    data = bytes(123456)
    tb = tracemalloc.get_object_traceback(data)
    traced, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    if tb is None or traced < 123456:
        return "tm broken: traceback %r, traced %d" % (tb, traced)
    return "tm ok"


def main():
    print("ready", flush=True)
    for line in sys.stdin:
        word = line.strip()
        if word == "tm_start":
            tracemalloc.start()
            reply = "done"
        elif word == "tm_stop":
            tracemalloc.stop()
            reply = "done"
        elif word == "burst":
            burst()
            reply = "done"
        elif word == "free":
            del KEPT[:]
            gc.collect()
            reply = "done"
        elif word == "allocators":
            reply = allocators()
        elif word == "tm_check":
            reply = tm_check()
        else:
            reply = "unknown %r" % word
        print(reply, flush=True)


main()
