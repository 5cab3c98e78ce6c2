#include "cli/target_status.h"

#include <time.h>
#include <unistd.h>

#include <ctime>
#include <sstream>
#include <utility>
#include <vector>

#include "attach/proc.h"
#include "base/error.h"
#include "inject/control_client.h"
#include "report/json.h"
#include "report/text_report.h"
#include "symbols/python_discovery.h"

namespace memtap::cli {

int64_t
readRssBytes(pid_t pid) {
    auto statm = attach::readWholeFile(fmt::format("/proc/{}/statm", pid));
    if (!statm) {
        return 0;
    }
    std::istringstream in(*statm);
    int64_t size = 0, resident = 0;
    in >> size >> resident;
    return resident * ::sysconf(_SC_PAGESIZE);
}

TargetStatus
readTargetStatusOrThrow(pid_t pid) {
    attach::readProcessInfoOrThrow(pid);
    TargetStatus status;
    status.pid = pid;
    auto modules = symbols::ProcessModules::readOrThrow(pid);
    status.python = symbols::discoverPythonOrThrow(modules).version;
    if (auto client = inject::AgentClient::tryConnect(pid)) {
        inject::AgentStatus agent = std::move(*client).statusOrThrow(std::chrono::milliseconds(5000));
        status.python = agent.python;
        status.agent = std::move(agent.values);
        status.attached = true;
    }
    status.rssBytes = readRssBytes(pid);
    timespec now{};
    clock_gettime(CLOCK_REALTIME, &now);
    status.nowUnixMs =
        static_cast<uint64_t>(now.tv_sec) * 1000u + static_cast<uint64_t>(now.tv_nsec) / 1000000u;
    return status;
}

std::optional<inject::AgentStatus>
tryReadAgentStatus(pid_t pid) {
    try {
        if (auto client = inject::AgentClient::tryConnect(pid)) {
            return std::move(*client).statusOrThrow(std::chrono::milliseconds(5000));
        }
    } catch (const Error&) {
        // Only a note depends on it; the caller's own request already worked.
    }
    return std::nullopt;
}

namespace {

using inject::tryParseUnsigned;

std::string
valueOf(const std::map<std::string, std::string>& agent, const char* key) {
    auto it = agent.find(key);
    return it == agent.end() ? std::string() : it->second;
}

// "raw,mem,obj" -> "raw, mem, obj".
std::string
domainList(const std::string& csv) {
    std::string out;
    for (char c : csv) {
        out += c;
        if (c == ',') {
            out += ' ';
        }
    }
    return out;
}

// "lost:mem,obj" -> {"lost", "mem, obj"}.
std::pair<std::string, std::string>
splitChain(const std::string& chain) {
    auto colon = chain.find(':');
    if (colon == std::string::npos) {
        return {chain, ""};
    }
    return {chain.substr(0, colon), domainList(chain.substr(colon + 1))};
}

std::string
describeWhen(const std::string& unixMs) {
    auto parsed = tryParseUnsigned(unixMs);
    if (!parsed) {
        return "at an unknown time";
    }
    uint64_t ms = *parsed;
    time_t seconds = static_cast<time_t>(ms / 1000);
    tm local{};
    char clock[32] = "?";
    if (localtime_r(&seconds, &local) != nullptr) {
        std::strftime(clock, sizeof(clock), "%H:%M:%S", &local);
    }
    time_t now = ::time(nullptr);
    auto ago = now >= seconds ? static_cast<long long>(now - seconds) : 0LL;
    return fmt::format("at {}, {} s ago", clock, ago);
}

} // namespace

std::string
describeAge(long long seconds) {
    if (seconds < 120) {
        return fmt::format("{} s", seconds);
    }
    if (seconds < 2 * 3600) {
        return fmt::format("{} min", seconds / 60);
    }
    return fmt::format("{} h {} min", seconds / 3600, seconds / 60 % 60);
}

std::optional<std::string>
tracedSince(const std::map<std::string, std::string>& agent) {
    auto at = tryParseUnsigned(valueOf(agent, "attached_at_unix_ms"));
    auto rss = tryParseUnsigned(valueOf(agent, "rss_at_attach_bytes"));
    if (!at || !rss || *at == 0) {
        return std::nullopt;
    }
    time_t seconds = static_cast<time_t>(*at / 1000);
    tm local{};
    char clock[32] = "?";
    if (localtime_r(&seconds, &local) != nullptr) {
        std::strftime(clock, sizeof(clock), "%H:%M:%S", &local);
    }
    time_t now = ::time(nullptr);
    long long ago = now >= seconds ? static_cast<long long>(now - seconds) : 0LL;
    return fmt::format("traced since {} ({} ago); {} of RSS predates it and is not traced", clock,
                       describeAge(ago), report::formatSize(static_cast<double>(*rss), false));
}

std::optional<std::string>
hookChainProblem(const std::map<std::string, std::string>& agent) {
    std::vector<std::string> parts;
    auto [state, domains] = splitChain(valueOf(agent, "hook_chain"));
    if (state == "lost") {
        parts.push_back(fmt::format(
            "memtap's hooks on {} were removed by another PyMem_SetAllocator caller "
            "(tracemalloc.stop()?) "
            "and memtap has no spare hooks left to install again: allocations there are not seen",
            domains));
    }
    std::string reinstalls = valueOf(agent, "hook_reinstalls");
    if (tryParseUnsigned(reinstalls).value_or(0) > 0) {
        parts.push_back(fmt::format(
            "hooks were removed by another PyMem_SetAllocator caller (tracemalloc.stop()?) and "
            "re-installed on {} {} ({} since attach); allocations in between were not seen and "
            "tracing restarted then, so compare only snapshots taken after it",
            domainList(valueOf(agent, "hook_reinstall_domains")),
            describeWhen(valueOf(agent, "hook_reinstall_unix_ms")),
            reinstalls == "1" ? std::string("once") : reinstalls + " times"));
    }
    if (parts.empty()) {
        return std::nullopt;
    }
    std::string out = parts[0];
    for (size_t i = 1; i < parts.size(); ++i) {
        out += "; " + parts[i];
    }
    return out;
}

std::string
hookChainState(const std::map<std::string, std::string>& agent) {
    std::string hooks = valueOf(agent, "hooks");
    auto [state, domains] = splitChain(valueOf(agent, "hook_chain"));
    if (hooks == "passthrough") {
        return "pass-through (recording stopped: the interpreter is finalizing)";
    }
    if (state == "intact") {
        return "installed, the current allocators";
    }
    if (state == "wrapped") {
        return fmt::format(
            "installed, wrapped on {} by a hook installed after memtap's (tracemalloc.start()?), "
            "which still calls memtap's",
            domains);
    }
    if (state == "lost") {
        return fmt::format("LOST on {} (see below)", domains);
    }
    if (state == "unsettled") {
        return fmt::format("not checked on {}: the allocator kept changing while memtap read it",
                           domains);
    }
    return hooks.empty() ? std::string("?") : hooks; // an agent older than hook_chain
}

std::string
renderStatusJson(const TargetStatus& status) {
    report::JsonWriter json;
    json.beginObject();
    json.key("attached");
    json.value(status.attached);
    json.key("pid");
    json.value(static_cast<int64_t>(status.pid));
    json.key("python");
    json.value(status.python);
    for (const auto& [key, value] : status.agent) {
        if (key == "python") {
            continue;
        }
        json.key(key);
        if (auto number = tryParseUnsigned(value)) {
            json.value(*number);
        } else {
            json.value(value);
        }
    }
    if (auto at = tryParseUnsigned(valueOf(status.agent, "peak_unix_ms"))) {
        // The name the README documents; peak_unix_ms stays for readers of the raw keys.
        json.key("peak_at");
        json.value(*at);
    }
    if (status.attached) {
        if (auto problem = hookChainProblem(status.agent)) {
            json.key("hook_problem");
            json.value(*problem);
        }
    }
    json.key("rss_bytes");
    json.value(status.rssBytes);
    if (status.memory) {
        report::writeBreakdownJson(json, *status.memory, report::explainMemory(*status.memory));
    }
    json.endObject();
    return json.str() + "\n";
}

namespace {

// " (12 s ago)", "" when unknown: the reader wants to relate the peak to an incident.
std::string
peakWhen(const std::string& unixMs, uint64_t nowUnixMs) {
    uint64_t at = tryParseUnsigned(unixMs).value_or(0);
    if (at == 0 || nowUnixMs == 0) {
        return "";
    }
    uint64_t ago = nowUnixMs > at ? (nowUnixMs - at) / 1000 : 0;
    return fmt::format(" ({} s ago; `memtap diff PID OLD peak` shows its lines)", ago);
}

} // namespace

// --native: which modules' malloc/mmap calls are traced (native_call_* keys).
std::string
nativeCallsText(const inject::AgentValues& agent) {
    std::string modules = valueOf(agent, "native_call_modules");
    std::string text =
        modules == "none" || modules.empty()
            ? std::string("no native module calls malloc or mmap through its GOT yet")
            : fmt::format("malloc/mmap of native modules traced ([native MODULE] in diffs): {}",
                          modules);
    if (numberOr(agent, "native_call_skipped", 0) > 0) {
        text +=
            fmt::format("; {} call slot(s) left alone, their memory is not seen ({})",
                        valueOf(agent, "native_call_skipped"), valueOf(agent, "native_call_skip_note"));
    }
    return text;
}

// What extensions report through PyTraceMalloc_Track (numpy's array data),
// from the agent's tracked_call_* keys (protocol.h).
std::string
trackedCallsText(const inject::AgentValues& agent) {
    auto value = [&](const char* key) { return valueOf(agent, key); };
    if (value("tracked_calls") != "rewired") {
        return "not traced (this interpreter has no PyTraceMalloc_Track)";
    }
    std::string text =
        value("tracked_call_modules") == "none"
            ? std::string("no loaded module calls PyTraceMalloc_Track yet (numpy does; modules "
                          "imported later are covered)")
            : fmt::format("PyTraceMalloc_Track callers traced (numpy's arrays: [numpy] in diffs): {}",
                          value("tracked_call_modules"));
    if (numberOr(agent, "tracked_call_skipped", 0) > 0) {
        text += fmt::format("; {} call slot(s) left alone, their memory is not seen ({})",
                            value("tracked_call_skipped"), value("tracked_call_skip_note"));
    }
    return text;
}

std::string
renderStatusText(const TargetStatus& status) {
    std::string text = fmt::format("pid:              {}\npython:           {}\nattached:         {}\n",
                                   status.pid, status.python, status.attached ? "yes" : "no");
    auto get = [&](const char* key) {
        auto it = status.agent.find(key);
        return it == status.agent.end() ? std::string("?") : it->second;
    };
    auto bytes = [&](const char* key) {
        auto value = get(key);
        auto number = tryParseUnsigned(value);
        return number ? report::formatSize(static_cast<double>(*number), false) : value;
    };
    if (status.attached) {
        bool sampled = get("mode") == "sampled";
        text += fmt::format("mode:             {}{}\n", get("mode"),
                            sampled ? fmt::format(" (mean interval {})", bytes("sample_bytes")) : "");
        std::string note = status.agent.count("frame_note") ? " (" + get("frame_note") + ")" : "";
        if (get("frame_capture") == "no") {
            note = " (no Python frames: " +
                   (note.empty() ? "this interpreter's layout is unknown" : get("frame_note")) + ")";
        }
        text += fmt::format("frames:           {}{}\n", get("frames"), note);
        if (valueOf(status.agent, "native") == "yes") {
            text += fmt::format("native:           {}\n", nativeCallsText(status.agent));
        } else if (valueOf(status.agent, "native") == "unavailable") {
            text += "native:           not traced: the agent could not find libc's malloc and mmap "
                    "definitions, so no native module was rewired\n";
        }
        if (status.agent.count("tracked_calls") != 0) {
            text += fmt::format("tracked calls:    {}\n", trackedCallsText(status.agent));
        }
        if (auto since = tracedSince(status.agent)) {
            text += fmt::format("not seen:         {}\n", *since);
        }
        text += fmt::format("allocations seen: {}\n", get("allocations_seen"));
        text += fmt::format("traced:           {}{} in {} blocks\n", bytes("traced_bytes"),
                            sampled ? " (estimate)" : "", get("traced_count"));
        if (status.agent.count("peak_traced_bytes") != 0) {
            text += fmt::format("peak traced:      {}{}\n", bytes("peak_traced_bytes"),
                                peakWhen(get("peak_unix_ms"), status.nowUnixMs));
        }
        if (!status.memory) {
            text += fmt::format(
                "malloc free:      {} (free inside glibc malloc's heap; counts in RSS until trimmed)\n",
                bytes("malloc_free_bytes"));
        }
        text += fmt::format("hooks:            {}\n", hookChainState(status.agent));
        if (auto problem = hookChainProblem(status.agent)) {
            text += fmt::format("warning:          {}\n", *problem);
        }
    }
    if (status.memory) {
        text += report::renderBreakdownText(*status.memory, report::explainMemory(*status.memory));
    } else {
        text += fmt::format("rss:              {}\n",
                            report::formatSize(static_cast<double>(status.rssBytes), false));
    }
    return text;
}

} // namespace memtap::cli
