// Snapshot: copy the per-traceback aggregates under the engine lock, format
// the text (protocol.h) after releasing it.
#include "agent/snapshot.h"

#include "agent/agent_state.h"
#include "agent/engine.h"
#include "agent/hooks.h"
#include "agent/native_calls.h"
#include "agent/thread_names.h"
#include "agent/traces.h"

#include <cstdlib>
#include <cstring>

namespace memtap_agent {
namespace {

// New tracebacks may appear between sizing the buffer and copying.
constexpr size_t kRowSlack = 1024;

void
appendEscaped(Text& out, const char* text, size_t length) {
    size_t start = 0;
    for (size_t i = 0; i < length; ++i) {
        const char* escaped = nullptr;
        switch (text[i]) {
        case '\\':
            escaped = "\\\\";
            break;
        case '\n':
            escaped = "\\n";
            break;
        case '\t':
            escaped = "\\t";
            break;
        default:
            continue;
        }
        out.append(text + start, i - start);
        out.append(escaped);
        start = i + 1;
    }
    out.append(text + start, length - start);
}

void
appendEscaped(Text& out, const InternedString& s) {
    appendEscaped(out, s.text, s.length);
}

// One "thread TID STATE NAME" line per distinct non-zero tid of the rows,
// deduplicated through an open-addressing set on the agent thread's heap
// (libc malloc, as the rows: never under the engine lock). False if the set
// could not be allocated.
// "domain D NAME" for each native module's domain the rows hold (--native).
void
appendDomainLines(Text& out, const SnapshotRow* rows, size_t n) {
    bool named[kNativeModules] = {};
    for (size_t i = 0; i < n; ++i) {
        uint32_t module = rows[i].domain - kNativeDomainBase;
        if (rows[i].domain >= kNativeDomainBase && module < kNativeModules && !named[module]) {
            named[module] = true;
            const char* name = nativeModuleName(module);
            out.append("domain ");
            out.appendU64(rows[i].domain);
            out.append(" native ");
            appendEscaped(out, name, std::strlen(name));
            out.append('\n');
        }
    }
}

bool
appendThreadLines(Text& out, const SnapshotRow* rows, size_t n) {
    size_t capacity = 16;
    while (capacity < 2 * n) {
        capacity *= 2;
    }
    auto* seen = static_cast<uint32_t*>(std::calloc(capacity, sizeof(uint32_t)));
    if (seen == nullptr) {
        return false;
    }
    for (size_t i = 0; i < n; ++i) {
        uint32_t tid = rows[i].tid;
        if (tid == 0) {
            continue;
        }
        size_t slot = mix64(tid) & (capacity - 1);
        while (seen[slot] != 0 && seen[slot] != tid) {
            slot = (slot + 1) & (capacity - 1);
        }
        if (seen[slot] == tid) {
            continue;
        }
        seen[slot] = tid;
        ThreadName name{};
        readThreadName(tid, &name);
        out.append("thread ");
        out.appendU64(tid);
        out.append(name.state == ThreadLife::kRunning  ? " running "
                   : name.state == ThreadLife::kExited ? " exited "
                                                       : " unknown ");
        appendEscaped(out, name.text, std::strlen(name.text));
        out.append('\n');
    }
    std::free(seen);
    return true;
}

uint64_t
roundCount(int64_t countFp) {
    return countFp > 0 ? static_cast<uint64_t>((countFp + kCountOne / 2) / kCountOne) : 0;
}

} // namespace

void
formatSnapshot(Text& out, SnapshotKind kind) noexcept {
    const memtap_start_args& args = g_agent.args;
    // A chain cut since the last look is re-installed first (and the traces
    // restarted), so this snapshot holds only what the hooks really saw.
    checkHookChain(g_agent.api);
    size_t capacity = engineTracebackCount() + kRowSlack;
    // The agent thread may use libc malloc (not a hooked path), but never
    // while it holds the engine lock: the buffer is sized first.
    auto* rows = static_cast<SnapshotRow*>(std::malloc(capacity * sizeof(SnapshotRow)));
    if (rows == nullptr) {
        out.reserve(SIZE_MAX); // marks the text failed: the reply is an error
        return;
    }
    EngineTotals totals{};
    size_t n = engineCopyTracebacks(rows, capacity, &totals, kind);

    out.append(MEMTAP_SNAPSHOT_MAGIC " ");
    out.appendU64(MEMTAP_SNAPSHOT_VERSION);
    out.append("\nmode ");
    out.append(args.mode == MEMTAP_MODE_EXACT ? "exact" : "sampled");
    out.append("\nsample_bytes ");
    out.appendU64(args.sample_bytes);
    out.append("\nattached_at_unix_ms ");
    out.appendU64(g_agent.attachedAtUnixMs);
    out.append("\ntraced_bytes ");
    out.appendU64(totals.tracedBytes);
    out.append("\ntraced_count ");
    out.appendU64(totals.tracedCount);
    out.append('\n');
    if (!appendThreadLines(out, rows, n)) {
        std::free(rows);
        out.reserve(SIZE_MAX); // marks the text failed: the reply is an error
        return;
    }
    appendDomainLines(out, rows, n);
    for (size_t i = 0; i < n; ++i) {
        const SnapshotRow& row = rows[i];
        out.append("T ");
        out.appendI64(row.bytes);
        out.append(' ');
        out.appendU64(roundCount(row.countFp));
        out.append(' ');
        out.appendU64(row.nframes);
        out.append(' ');
        out.appendU64(row.records > 0 ? static_cast<uint64_t>(row.records) : 0);
        out.append(' ');
        out.appendU64(row.tid);
        out.append(' ');
        out.appendU64(row.domain);
        out.append('\n');
        for (uint32_t f = 0; f < row.nframes; ++f) {
            const Frame& frame = row.frames[f];
            out.append("F ");
            out.appendI64(frame.line);
            out.append(' ');
            appendEscaped(out, engineString(frame.file));
            out.append('\t');
            appendEscaped(out, engineString(frame.func));
            out.append('\n');
        }
    }
    out.append("end\n");
    std::free(rows);
}

} // namespace memtap_agent
