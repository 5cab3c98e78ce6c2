/* A ticker thread that needs no GIL: it wakes every 1 ms and records the
 * largest gap between two wakeups. While ptrace holds this thread stopped
 * it cannot tick, so the gap is the time it was held (plus ~1 ms), whatever
 * the GIL is doing. Built by bench/attach_latency.py, loaded with ctypes. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

static _Atomic int64_t g_max_gap_ns;

static int64_t
now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void*
tick(void* unused) {
    (void)unused;
    struct timespec one_ms = {0, 1000000};
    int64_t last = now_ns();
    for (;;) {
        nanosleep(&one_ms, NULL);
        int64_t t = now_ns();
        int64_t gap = t - last;
        last = t;
        if (gap > atomic_load(&g_max_gap_ns)) {
            atomic_store(&g_max_gap_ns, gap);
        }
    }
    return NULL;
}

int
gapticker_start(void) {
    pthread_t thread;
    return pthread_create(&thread, NULL, tick, NULL);
}

/* The largest gap since the last call, in nanoseconds; resets it. */
int64_t
gapticker_take_max(void) {
    return atomic_exchange(&g_max_gap_ns, 0);
}
