#include "cli/target_status.h"

#include <unistd.h>

#include <sstream>

#include "attach/proc.h"
#include "base/error.h"
#include "inject/control_client.h"
#include "report/json.h"
#include "report/text_report.h"
#include "symbols/python_discovery.h"

namespace memtap::cli {

std::map<std::string, std::string>
parseKeyValueLines(const std::string& payload) {
    std::map<std::string, std::string> result;
    std::istringstream in(payload);
    std::string line;
    while (std::getline(in, line)) {
        auto space = line.find(' ');
        if (space != std::string::npos) {
            result[line.substr(0, space)] = line.substr(space + 1);
        }
    }
    return result;
}

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
    if (auto client = inject::ControlClient::tryConnect(pid)) {
        status.agent =
            parseKeyValueLines(client->requestOrThrow("status", std::chrono::milliseconds(5000)));
        status.attached = true;
        if (auto it = status.agent.find("python"); it != status.agent.end() && !it->second.empty()) {
            status.python = it->second;
        }
    }
    status.rssBytes = readRssBytes(pid);
    return status;
}

namespace {

bool
isNumber(const std::string& text) {
    return !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
}

} // namespace

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
        if (isNumber(value)) {
            json.value(static_cast<uint64_t>(std::stoull(value)));
        } else {
            json.value(value);
        }
    }
    json.key("rss_bytes");
    json.value(status.rssBytes);
    json.endObject();
    return json.str() + "\n";
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
        return isNumber(value) ? report::formatSize(static_cast<double>(std::stoull(value)), false)
                               : value;
    };
    if (status.attached) {
        bool sampled = get("mode") == "sampled";
        text += fmt::format("mode:             {}{}\n", get("mode"),
                            sampled ? fmt::format(" (mean interval {})", bytes("sample_bytes")) : "");
        text += fmt::format("frames:           {}\n", get("frames"));
        text += fmt::format("allocations seen: {}\n", get("allocations_seen"));
        text += fmt::format("traced:           {}{} in {} blocks\n", bytes("traced_bytes"),
                            sampled ? " (estimate)" : "", get("traced_count"));
        text += fmt::format(
            "malloc free:      {} (free inside glibc malloc's heap; counts in RSS until trimmed)\n",
            bytes("malloc_free_bytes"));
    }
    text += fmt::format("rss:              {}\n",
                        report::formatSize(static_cast<double>(status.rssBytes), false));
    return text;
}

} // namespace memtap::cli
