"""Installs and removes passthrough_hooks.c (hooks that only forward) in
this process, through ctypes: the floor under any PEP 445 hook, for
instructions.py (macro_ir.py) and macro.py (macro_target.py)."""
import ctypes

DOMAINS = (0, 1, 2)  # PYMEM_DOMAIN_RAW, _MEM, _OBJ


class Allocator(ctypes.Structure):
    # PyMemAllocatorEx (Include/cpython/pymem.h): ctx and four functions.
    _fields_ = [("ctx", ctypes.c_void_p), ("malloc", ctypes.c_void_p), ("calloc", ctypes.c_void_p),
                ("realloc", ctypes.c_void_p), ("free", ctypes.c_void_p)]


def _api():
    get = ctypes.pythonapi.PyMem_GetAllocator
    put = ctypes.pythonapi.PyMem_SetAllocator
    get.restype = put.restype = None
    return get, put


def install(library):
    """Puts the hooks over every domain; returns the originals for remove()."""
    lib = ctypes.CDLL(library)
    get, put = _api()
    originals = []
    for domain in DOMAINS:
        original, hooks = Allocator(), Allocator()
        get(domain, ctypes.byref(original))
        lib.passthrough_hooks(domain, ctypes.byref(original), ctypes.byref(hooks))
        put(domain, ctypes.byref(hooks))
        originals.append(original)
    return originals


def remove(originals):
    """Puts back what install() replaced (a single-threaded caller: no call
    of another thread can be inside a hook)."""
    _, put = _api()
    for domain, original in zip(DOMAINS, originals):
        put(domain, ctypes.byref(original))
