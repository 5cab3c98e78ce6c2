"""3.13+: the agent checks CPython's own _Py_DebugOffsets against its layout
table field by field (src/agent/python_debug_offsets.h).

Run with the interpreter under test: python test_debug_offsets.py PROBE_SO.
On the real 3.13 table: agreement, framesInit succeeds and says so. On copies
with one field changed: the verdict names that field. Exits 77 before 3.13."""

import ctypes
import sys

SKIP = 77
# DebugOffsetsVerdict in python_debug_offsets.h.
AGREE, ABSENT, WRONG_VERSION, FREE_THREADED, INSANE, DISAGREE = range(6)
U64 = 8
# Byte offsets inside _Py_DebugOffsets (v3.13.0): 3 header words, runtime_state
# (3), interpreter_state (13), then thread_state, interpreter_frame, code_object.
THREAD_STATE = U64 * (3 + 3 + 13)
INTERPRETER_FRAME = THREAD_STATE + U64 * 9
CODE_OBJECT = INTERPRETER_FRAME + U64 * 6


def main():
    if sys.version_info[:2] != (3, 13):
        print(f"SKIP: the transcribed _Py_DebugOffsets is 3.13's; this is {sys.version.split()[0]}")
        return SKIP
    probe = ctypes.PyDLL(sys.argv[1])
    probe.probe_note.restype = ctypes.c_char_p
    minor = sys.version_info[1]
    if probe.probe_init(3, minor) != 1:
        print("FAIL: framesInit refused:", probe.probe_note().decode())
        return 1
    note = probe.probe_note().decode()
    if note != "layout table, confirmed by _Py_DebugOffsets":
        print("FAIL: note", repr(note))
        return 1

    field = ctypes.create_string_buffer(64)

    def check(at, value):
        v = probe.probe_check_debug_offsets(minor, at, ctypes.c_ulonglong(value), field, 64)
        return v, field.value.decode()

    failures = []

    def expect(label, got, want):
        if got != want:
            failures.append(f"{label}: got {got}, want {want}")

    expect("real table", check(-1, 0), (AGREE, ""))
    # current_frame is thread_state's 5th word (size, prev, next, interp, current_frame).
    expect("tstate.current_frame moved", check(THREAD_STATE + 4 * U64, 80),
           (DISAGREE, "thread_state.current_frame"))
    # owner is interpreter_frame's 6th word.
    expect("frame.owner moved", check(INTERPRETER_FRAME + 5 * U64, 71),
           (DISAGREE, "interpreter_frame.owner"))
    # code_object.filename (2nd word) outside the code object.
    expect("filename outside struct", check(CODE_OBJECT + 1 * U64, 1 << 20),
           (INSANE, "code_object.filename"))
    expect("struct size absurd", check(INTERPRETER_FRAME, 1 << 40),
           (INSANE, "interpreter_frame.previous"))
    expect("free_threaded", check(2 * U64, 1), (FREE_THREADED, ""))
    expect("version 3.12", check(U64, 0x030C01F0), (WRONG_VERSION, ""))
    expect("cookie", check(0, 0), (ABSENT, ""))
    if failures:
        print("FAIL:\n  " + "\n  ".join(failures))
        return 1
    print(f"ok: {sys.version.split()[0]} _Py_DebugOffsets agree with the layout table; tampered copies refused")
    return 0


if __name__ == "__main__":
    sys.exit(main())
