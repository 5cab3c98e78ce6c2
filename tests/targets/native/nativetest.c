/* A native library for tests/integration/native_test.py: memory taken from
 * libc directly, as a C extension does, where no PyMem hook sees it. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define MAX_BLOCKS 100000
#define MAX_MAPS 1000

static void* blocks[MAX_BLOCKS];
static int block_count;
static void* maps[MAX_MAPS];
static size_t map_sizes[MAX_MAPS];
static int map_count;

int
grow(int count, size_t size) {
    for (int i = 0; i < count && block_count < MAX_BLOCKS; ++i) {
        void* p = malloc(size);
        if (p == NULL) {
            return -1;
        }
        memset(p, 1, size);
        blocks[block_count++] = p;
    }
    return block_count;
}

int
grow_mapped(int count, size_t size) {
    for (int i = 0; i < count && map_count < MAX_MAPS; ++i) {
        void* p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            return -1;
        }
        map_sizes[map_count] = size;
        maps[map_count++] = p;
    }
    return map_count;
}

void
release(void) {
    for (int i = 0; i < block_count; ++i) {
        free(blocks[i]);
    }
    block_count = 0;
    for (int i = 0; i < map_count; ++i) {
        munmap(maps[i], map_sizes[i]);
    }
    map_count = 0;
}
