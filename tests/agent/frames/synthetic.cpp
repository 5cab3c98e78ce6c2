// The frame walker (src/agent/python_frames.cpp) on synthetic CPython 3.14,
// 3.15 and "3.16" thread states: no such interpreter can be installed here,
// so frames, code objects, strings and _PyRuntime's _Py_DebugOffsets are laid
// out by the structs transcribed in python_layouts.h / python_debug_offsets.h
// and handed to the real walker through a fake symbol lookup. Built with the
// agent's flags (no exceptions, no RTTI); exits 1 on the first failed group.
#include "agent/python_debug_offsets.h"
#include "agent/python_frames.h"
#include "agent/python_layouts.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

namespace {

namespace L = memtap_agent::layouts;
using Frame = L::cpy314::InterpreterFrame;
using Code = L::cpy314::CodeObject;

int g_failures = 0;

#define CHECK(cond)                                                                                     \
    do {                                                                                                \
        if (!(cond)) {                                                                                  \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);                    \
            ++g_failures;                                                                               \
        }                                                                                               \
    } while (0)

// Fake type objects: only their addresses and tp_basicsize are read.
alignas(16) unsigned char g_codeType[512];
alignas(16) unsigned char g_unicodeType[512];
alignas(16) unsigned char g_noneObject[16];

// A compact str (Include/cpython/unicodeobject.h, 3.12+ shape): PyASCIIObject
// is 40 bytes, PyCompactUnicodeObject 56; the characters follow the header.
struct FakeStr {
    alignas(16) unsigned char bytes[160];
};

void
makeStr(FakeStr* s, unsigned kind, bool ascii, const void* chars, int64_t length) {
    memset(s, 0, sizeof *s);
    const void* type = g_unicodeType;
    memcpy(s->bytes + L::kObType, &type, sizeof type);
    memcpy(s->bytes + L::kUniLength, &length, sizeof length);
    // state bits: kind 2-4, compact 5, ascii 6.
    uint32_t state = (kind << 2) | (1u << 5) | (ascii ? 1u << 6 : 0u);
    memcpy(s->bytes + L::kUniState, &state, sizeof state);
    memcpy(s->bytes + (ascii ? 40 : 56), chars, static_cast<size_t>(length) * kind);
}

struct FakeCode {
    alignas(16) Code code;
    uint16_t bytecode[32]; // co_code_adaptive continues here
};

void
makeCode(FakeCode* c, int firstLine, FakeStr* file, FakeStr* name, int firstTraceable) {
    memset(c, 0, sizeof *c);
    c->code.ob_refcnt_and_type[1] = g_codeType;
    c->code.co_firstlineno = firstLine;
    c->code.co_filename = file;
    c->code.co_name = name;
    c->code._co_firsttraceable = firstTraceable;
}

// PyCode_Addr2Line stand-in: first line + instruction index.
int
fakeAddr2Line(const void* code, int byteOffset) {
    int first;
    memcpy(&first, static_cast<const char*>(code) + offsetof(Code, co_firstlineno), sizeof first);
    return byteOffset < 0 ? first : first + byteOffset / 2;
}

// The thread state, big enough for either version's prefix.
alignas(16) unsigned char g_tstate[256];

void*
fakeTstate() {
    return g_tstate;
}

L::DebugOffsets314 g_runtime;

void*
fakeLookup(const char* name) {
    if (strcmp(name, "PyGILState_GetThisThreadState") == 0 ||
        strcmp(name, "PyThreadState_GetUnchecked") == 0) {
        return reinterpret_cast<void*>(&fakeTstate);
    }
    if (strcmp(name, "PyCode_Addr2Line") == 0) {
        return reinterpret_cast<void*>(&fakeAddr2Line);
    }
    if (strcmp(name, "PyCode_Type") == 0) {
        return g_codeType;
    }
    if (strcmp(name, "PyUnicode_Type") == 0) {
        return g_unicodeType;
    }
    if (strcmp(name, "_PyRuntime") == 0) {
        return &g_runtime;
    }
    return nullptr; // _Py_PrintReferences, _Py_DecRefShared: a release GIL build
}

// What a 3.minor GIL build would publish, from the transcribed structs.
void
makeDebugOffsets(int minor) {
    memset(&g_runtime, 0, sizeof g_runtime);
    memcpy(g_runtime.cookie, "xdebugpy", 8);
    g_runtime.version = 0x030000f0ull | (static_cast<uint64_t>(minor) << 16);
    g_runtime.threadState.size = 200;
    g_runtime.threadState.currentFrame = minor == 14
                                             ? offsetof(L::cpy314::ThreadState, current_frame)
                                             : offsetof(L::cpy314::ThreadState315, current_frame);
    g_runtime.interpreterFrame = {sizeof(Frame),
                                  offsetof(Frame, previous),
                                  offsetof(Frame, f_executable),
                                  offsetof(Frame, instr_ptr),
                                  offsetof(Frame, localsplus),
                                  offsetof(Frame, owner),
                                  offsetof(Frame, stackpointer),
                                  0};
    auto& c = g_runtime.codeObject;
    c.size = sizeof(Code);
    c.filename = offsetof(Code, co_filename);
    c.name = offsetof(Code, co_name);
    c.qualname = offsetof(Code, co_qualname);
    c.linetable = offsetof(Code, co_linetable);
    c.firstlineno = offsetof(Code, co_firstlineno);
    c.argcount = offsetof(Code, co_argcount);
    c.localsplusnames = offsetof(Code, co_localsplusnames);
    c.localspluskinds = offsetof(Code, co_localspluskinds);
    c.coCodeAdaptive = offsetof(Code, co_code_adaptive);
}

FakeStr g_file, g_file2, g_funcA, g_funcC, g_funcD, g_funcE;
FakeCode g_codeA, g_codeC, g_codeD, g_codeE;
Frame g_frames[7];

uintptr_t
tagged(const void* obj) {
    return reinterpret_cast<uintptr_t>(obj) | 1; // a deferred reference (Py_TAG_REFCNT)
}

// Most recent first: A (thread), an interpreter-owned shim, a base/C-stack
// frame (owner 4), C (generator), a None executable owned by the thread, D
// (incomplete: before _co_firsttraceable), E (owned by a frame object).
void
buildChain(int minor) {
    const char file[] = "/srv/app/na\xefve.py"; // latin-1 kind 1: "naïve"
    makeStr(&g_file, 1, false, file, sizeof file - 1);
    const char file2[] = "/srv/app/lib.py";
    makeStr(&g_file2, 1, true, file2, sizeof file2 - 1);
    const uint16_t sigma[] = {0x03c3, '_', 'f'}; // "σ_f", kind 2
    makeStr(&g_funcA, 2, false, sigma, 3);
    makeStr(&g_funcC, 1, true, "gen", 3);
    makeStr(&g_funcD, 1, true, "incomplete", 10);
    makeStr(&g_funcE, 1, true, "outer", 5);
    makeCode(&g_codeA, 10, &g_file, &g_funcA, 0);
    makeCode(&g_codeC, 20, &g_file2, &g_funcC, 0);
    makeCode(&g_codeD, 30, &g_file2, &g_funcD, 4);
    makeCode(&g_codeE, 40, &g_file, &g_funcE, 1);
    memset(g_frames, 0, sizeof g_frames);
    struct Spec {
        const void* executable;
        char owner;
        int instr;
    } specs[] = {
        {&g_codeA, 0, 3},     {&g_codeC, 3, 0}, {&g_codeC, 4, 0}, {&g_codeC, 1, 5},
        {g_noneObject, 0, 0}, {&g_codeD, 0, 2}, {&g_codeE, 2, 7},
    };
    for (int i = 0; i < 7; ++i) {
        const FakeCode* code = static_cast<const FakeCode*>(specs[i].executable);
        g_frames[i].f_executable = tagged(specs[i].executable);
        g_frames[i].previous = i + 1 < 7 ? &g_frames[i + 1] : nullptr;
        g_frames[i].owner = specs[i].owner;
        g_frames[i].instr_ptr =
            specs[i].executable == g_noneObject
                ? nullptr
                : reinterpret_cast<uint16_t*>(const_cast<char*>(code->code.co_code_adaptive)) +
                      specs[i].instr;
    }
    memset(g_tstate, 0, sizeof g_tstate);
    Frame* top = &g_frames[0];
    unsigned at = minor == 14 ? offsetof(L::cpy314::ThreadState, current_frame)
                              : offsetof(L::cpy314::ThreadState315, current_frame);
    memcpy(g_tstate + at, &top, sizeof top);
}

struct Expected {
    const char* file;
    const char* func;
    int line;
};

void
expectFrames(const char* label, const Expected* want, int count) {
    memtap_agent::RawFrame got[16];
    int n = memtap_agent::captureFrames(got, 16);
    if (n != count) {
        fprintf(stderr, "%s: %d frames, want %d\n", label, n, count);
        ++g_failures;
        return;
    }
    for (int i = 0; i < n; ++i) {
        char file[64];
        char func[64];
        CHECK(memtap_agent::copyCodeNames(got[i].code, file, sizeof file, func, sizeof func) == 0);
        if (strcmp(file, want[i].file) != 0 || strcmp(func, want[i].func) != 0 ||
            got[i].line != want[i].line) {
            fprintf(stderr, "%s frame %d: %s:%d %s, want %s:%d %s\n", label, i, file, got[i].line, func,
                    want[i].file, want[i].line, want[i].func);
            ++g_failures;
        }
    }
}

void
expectNote(const char* label, const char* want) {
    if (strcmp(memtap_agent::framesNote(), want) != 0) {
        fprintf(stderr, "%s: note \"%s\", want \"%s\"\n", label, memtap_agent::framesNote(), want);
        ++g_failures;
    }
}

const Expected kWalk[] = {
    {"/srv/app/na\xc3\xafve.py", "\xcf\x83_f", 13}, // A: first line 10 + instruction 3
    {"/srv/app/lib.py", "gen", 25},                 // C: shim and base frame skipped
    {"/srv/app/na\xc3\xafve.py", "outer", 47},      // E: None executable and incomplete D skipped
};
// With no _co_firsttraceable (a version newer than the tables), D shows.
const Expected kWalkNoFirstTraceable[] = {
    kWalk[0], kWalk[1], {"/srv/app/lib.py", "incomplete", 32}, kWalk[2]};

void
setCodeBasicSize(int64_t size) {
    memcpy(g_codeType + L::kTpBasicSize, &size, sizeof size);
}

} // namespace

int
main() {
    setCodeBasicSize(sizeof(Code));
    const int minors[] = {14, 15};
    for (int minor : minors) {
        char label[32];
        snprintf(label, sizeof label, "3.%d agree", minor);
        buildChain(minor);
        makeDebugOffsets(minor);
        CHECK(memtap_agent::framesInit(3, minor, fakeLookup));
        expectNote(label, "layout table, confirmed by _Py_DebugOffsets");
        expectFrames(label, kWalk, 3);

        snprintf(label, sizeof label, "3.%d disagree", minor);
        g_runtime.interpreterFrame.owner = 75;
        CHECK(!memtap_agent::framesInit(3, minor, fakeLookup));
        expectNote(label, "frames off: _Py_DebugOffsets disagrees with memtap's layout at "
                          "interpreter_frame.owner");
        expectFrames(label, nullptr, 0);

        snprintf(label, sizeof label, "3.%d malformed", minor);
        makeDebugOffsets(minor);
        g_runtime.codeObject.filename = 1u << 20;
        CHECK(!memtap_agent::framesInit(3, minor, fakeLookup));
        expectNote(label, "frames off: _Py_DebugOffsets malformed at code_object.filename");
        expectFrames(label, nullptr, 0);

        snprintf(label, sizeof label, "3.%d wrong shape", minor);
        makeDebugOffsets(minor);
        g_runtime.codeObject.size += 8; // not sizeof(PyCodeObject) as PyCode_Type says
        CHECK(!memtap_agent::framesInit(3, minor, fakeLookup));
        expectNote(label, "frames off: _Py_DebugOffsets malformed at code_object.size");

        snprintf(label, sizeof label, "3.%d other version", minor);
        makeDebugOffsets(minor == 14 ? 15 : 14);
        CHECK(!memtap_agent::framesInit(3, minor, fakeLookup));
        expectNote(label, "frames off: _Py_DebugOffsets names another CPython version");

        snprintf(label, sizeof label, "3.%d no cookie", minor);
        makeDebugOffsets(minor);
        g_runtime.cookie[0] = 'X';
        CHECK(memtap_agent::framesInit(3, minor, fakeLookup));
        expectNote(label, "layout table (no _Py_DebugOffsets cookie)");
        expectFrames(label, kWalk, 3);
    }

    // 3.16: no table; laid out as 3.15 publishes it, the walker takes it.
    buildChain(15);
    makeDebugOffsets(16);
    g_runtime.threadState.currentFrame = offsetof(L::cpy314::ThreadState315, current_frame);
    CHECK(memtap_agent::framesInit(3, 16, fakeLookup));
    expectNote("3.16", "newer CPython than memtap knows: frames from _Py_DebugOffsets");
    expectFrames("3.16", kWalkNoFirstTraceable, 4);

    g_runtime.threadState.currentFrame = 1u << 12; // outside thread_state.size
    CHECK(!memtap_agent::framesInit(3, 16, fakeLookup));
    expectNote("3.16 malformed", "frames off: _Py_DebugOffsets malformed at thread_state.current_frame");
    expectFrames("3.16 malformed", nullptr, 0);

    makeDebugOffsets(16);
    g_runtime.cookie[0] = 'X';
    CHECK(!memtap_agent::framesInit(3, 16, fakeLookup));
    expectNote("3.16 no cookie", "frames off: newer CPython than memtap knows, no _Py_DebugOffsets");
    expectFrames("3.16 no cookie", nullptr, 0);

    if (g_failures != 0) {
        fprintf(stderr, "FAIL: %d check(s)\n", g_failures);
        return 1;
    }
    printf("PASS: synthetic 3.14, 3.15 and 3.16 frame chains\n");
    return 0;
}
