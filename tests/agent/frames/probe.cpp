// Test probe: python_frames.cpp in a shared library a Python script drives
// through ctypes. Called through ctypes.PyDLL the GIL stays held; through
// ctypes.CDLL it is released, which is how the "no GIL" answer is tested.
#include "agent/python_frames.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#define PROBE_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

constexpr int kMaxFrames = 256;

void*
lookupGlobal(const char* name) {
    return dlsym(RTLD_DEFAULT, name);
}

void*
countOnFreshThread(void* result) {
    memtap_agent::RawFrame frames[8];
    *static_cast<int*>(result) = memtap_agent::captureFrames(frames, 8);
    return nullptr;
}

long long
nowNs() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

} // namespace

PROBE_EXPORT int
probe_init(int major, int minor) {
    return memtap_agent::framesInit(major, minor, lookupGlobal) ? 1 : 0;
}

// Writes one "file\tline\tfunction\tfirstline\n" line per frame, most recent
// first, into buf. Returns the number of frames, or -1 if a name could not
// be read or buf is too small.
PROBE_EXPORT int
probe_capture(char* buf, int cap, int max) {
    memtap_agent::RawFrame frames[kMaxFrames];
    if (max > kMaxFrames) {
        max = kMaxFrames;
    }
    int n = memtap_agent::captureFrames(frames, max);
    int used = 0;
    buf[0] = '\0';
    for (int i = 0; i < n; ++i) {
        char file[1024];
        char func[256];
        memtap_agent::CodeIdentity id;
        if (memtap_agent::copyCodeNames(frames[i].code, file, sizeof file, func, sizeof func) != 0 ||
            !memtap_agent::codeIdentity(frames[i].code, &id)) {
            return -1;
        }
        int wrote = snprintf(buf + used, static_cast<size_t>(cap - used), "%s\t%d\t%s\t%d\n", file,
                             frames[i].line, func, id.firstLine);
        if (wrote < 0 || wrote >= cap - used) {
            return -1;
        }
        used += wrote;
    }
    return n;
}

// Names of the code of frame `index` (0 = innermost) with the given
// capacities, to test truncation.
PROBE_EXPORT int
probe_names(int index, char* file, int fileCap, char* func, int funcCap) {
    memtap_agent::RawFrame frames[8];
    if (index < 0 || index >= 8 || memtap_agent::captureFrames(frames, index + 1) != index + 1) {
        return -2;
    }
    return memtap_agent::copyCodeNames(frames[index].code, file, fileCap, func, funcCap);
}

PROBE_EXPORT int
probe_count(int max) {
    memtap_agent::RawFrame frames[kMaxFrames];
    return memtap_agent::captureFrames(frames, max > kMaxFrames ? kMaxFrames : max);
}

// captureFrames on a thread that never had a Python thread state.
PROBE_EXPORT int
probe_count_on_c_thread() {
    int result = -1;
    pthread_t thread;
    if (pthread_create(&thread, nullptr, countOnFreshThread, &result) != 0) {
        return -1;
    }
    pthread_join(thread, nullptr);
    return result;
}

// Mean ns per captureFrames(max) call over iters calls.
PROBE_EXPORT double
probe_bench(int max, int iters) {
    memtap_agent::RawFrame frames[kMaxFrames];
    if (max > kMaxFrames) {
        max = kMaxFrames;
    }
    long long total = 0;
    long long start = nowNs();
    for (int i = 0; i < iters; ++i) {
        total += memtap_agent::captureFrames(frames, max);
    }
    long long elapsed = nowNs() - start;
    if (total == 0) {
        return -1.0;
    }
    return static_cast<double>(elapsed) / iters;
}
