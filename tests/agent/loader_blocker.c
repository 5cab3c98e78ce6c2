/* A library whose constructor blocks inside dlopen() until told to go on.
 *
 * glibc runs constructors with the loader's dl_load_lock held (elf/dl-open.c:
 * _dl_open takes it, dl_open_worker calls _dl_init), and dlsym and dlopen
 * take that lock too. agent_control_test.py loads this on one thread to hold
 * the lock, and checks that the agent's entry still returns at once (it must
 * not call into the loader on the borrowed thread) while the agent thread,
 * which does, waits with its start-status word at PENDING.
 *
 * MEMTAP_BLOCKER_OUT (fd): one byte written once the lock is held.
 * MEMTAP_BLOCKER_IN (fd): the constructor returns once a byte can be read.
 */
#include <stdlib.h>
#include <unistd.h>

__attribute__((constructor)) static void
block_in_constructor(void) {
    const char* in = getenv("MEMTAP_BLOCKER_IN");
    const char* out = getenv("MEMTAP_BLOCKER_OUT");
    if (in == NULL || out == NULL) {
        return;
    }
    char c = 'x';
    if (write(atoi(out), &c, 1) != 1) {
        return;
    }
    while (read(atoi(in), &c, 1) < 0) {
    }
}
