/* The floor under any PEP 445 allocator hook: hooks that only forward.
 *
 * bench/instructions.py's "passthrough" setup installs these in all three
 * domains (macro_ir.py, through ctypes). Whatever they cost is what a hook
 * costs before it does anything: the interpreter's indirect call lands in a
 * function of ours, which loads the original's ctx and jumps to it. On a
 * build whose profile-guided optimisation turned that indirect call into a
 * direct, inlined call to pymalloc (Debian's static python3), it also costs
 * that optimisation. memtap's hooks cannot cost less than this.
 *
 * The struct is PyMemAllocatorEx's layout (Include/cpython/pymem.h, 3.5+):
 * ctx, malloc, calloc, realloc, free. Built by instructions.py with the C
 * compiler; no Python headers needed. */
#include <stddef.h>

typedef struct {
    void* ctx;
    void* (*malloc)(void* ctx, size_t size);
    void* (*calloc)(void* ctx, size_t nelem, size_t elsize);
    void* (*realloc)(void* ctx, void* ptr, size_t new_size);
    void (*free)(void* ctx, void* ptr);
} Allocator;

/* PYMEM_DOMAIN_RAW, _MEM, _OBJ; set before the hooks are installed.
 * static, so a hook reaches it without a GOT load. */
static Allocator passthrough_original[3];

#define DOMAIN_HOOKS(D)                                                                                 \
    static void* malloc##D(void* ctx, size_t size) {                                                    \
        (void)ctx;                                                                                      \
        return passthrough_original[D].malloc(passthrough_original[D].ctx, size);                       \
    }                                                                                                   \
    static void* calloc##D(void* ctx, size_t nelem, size_t elsize) {                                    \
        (void)ctx;                                                                                      \
        return passthrough_original[D].calloc(passthrough_original[D].ctx, nelem, elsize);              \
    }                                                                                                   \
    static void* realloc##D(void* ctx, void* ptr, size_t size) {                                        \
        (void)ctx;                                                                                      \
        return passthrough_original[D].realloc(passthrough_original[D].ctx, ptr, size);                 \
    }                                                                                                   \
    static void free##D(void* ctx, void* ptr) {                                                         \
        (void)ctx;                                                                                      \
        passthrough_original[D].free(passthrough_original[D].ctx, ptr);                                 \
    }

DOMAIN_HOOKS(0)
DOMAIN_HOOKS(1)
DOMAIN_HOOKS(2)

/* Keeps what PyMem_GetAllocator returned for a domain and gives the hook
 * struct to install over it, with the original's ctx (as memtap's). */
void
passthrough_hooks(int domain, const Allocator* original, Allocator* out) {
    static const Allocator fns[3] = {
        {NULL, malloc0, calloc0, realloc0, free0},
        {NULL, malloc1, calloc1, realloc1, free1},
        {NULL, malloc2, calloc2, realloc2, free2},
    };
    passthrough_original[domain] = *original;
    *out = fns[domain];
    out->ctx = passthrough_original[domain].ctx;
}
