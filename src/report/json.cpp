#include "report/json.h"

#include <cmath>
#include <iterator>

#include <fmt/format.h>

#include "report/memory_breakdown.h"
#include "report/text_width.h"

namespace memtap::report {

void
JsonWriter::beforeValue() {
    if (afterKey_) {
        afterKey_ = false;
        return;
    }
    if (!empty_.empty()) {
        if (!empty_.back()) {
            out_ += ',';
        }
        empty_.back() = false;
    }
}

void
JsonWriter::beginObject() {
    beforeValue();
    out_ += '{';
    empty_.push_back(true);
}

void
JsonWriter::endObject() {
    out_ += '}';
    empty_.pop_back();
}

void
JsonWriter::beginArray() {
    beforeValue();
    out_ += '[';
    empty_.push_back(true);
}

void
JsonWriter::endArray() {
    out_ += ']';
    empty_.pop_back();
}

void
JsonWriter::key(std::string_view name) {
    beforeValue();
    appendString(name);
    out_ += ':';
    afterKey_ = true;
}

void
JsonWriter::value(std::string_view text) {
    beforeValue();
    appendString(text);
}

void
JsonWriter::value(int64_t number) {
    beforeValue();
    fmt::format_to(std::back_inserter(out_), "{}", number);
}

void
JsonWriter::value(uint64_t number) {
    beforeValue();
    fmt::format_to(std::back_inserter(out_), "{}", number);
}

void
JsonWriter::value(double number) {
    beforeValue();
    if (!std::isfinite(number)) {
        out_ += "null";
        return;
    }
    // fmt's "{}" is the shortest text that reads back as the same double.
    fmt::format_to(std::back_inserter(out_), "{}", number);
}

void
JsonWriter::value(bool flag) {
    beforeValue();
    out_ += flag ? "true" : "false";
}

void
JsonWriter::null() {
    beforeValue();
    out_ += "null";
}

void
JsonWriter::appendString(std::string_view text) {
    out_ += '"';
    for (size_t offset = 0; offset < text.size(); ++offset) {
        unsigned char c = static_cast<unsigned char>(text[offset]);
        switch (c) {
        case '"':
            out_ += "\\\"";
            break;
        case '\\':
            out_ += "\\\\";
            break;
        case '\b':
            out_ += "\\b";
            break;
        case '\f':
            out_ += "\\f";
            break;
        case '\n':
            out_ += "\\n";
            break;
        case '\r':
            out_ += "\\r";
            break;
        case '\t':
            out_ += "\\t";
            break;
        default:
            if (c < 0x20 || c == 0x7f) {
                fmt::format_to(std::back_inserter(out_), "\\u{:04x}", c);
            } else if (c < 0x80) {
                out_ += static_cast<char>(c);
            } else {
                // JSON text must be UTF-8, but Linux file names are bytes:
                // what is not UTF-8 becomes U+FFFD.
                size_t end = offset + 1;
                while (end < text.size() && static_cast<unsigned char>(text[end]) >= 0x80) {
                    ++end;
                }
                out_ += toValidUtf8(text.substr(offset, end - offset));
                offset = end - 1;
            }
        }
    }
    out_ += '"';
}

namespace {

// "file", "line", "function": the same three keys for a stat and each frame.
void
writeFrameFields(JsonWriter& json, const Frame& frame) {
    json.key("file");
    json.value(frame.file);
    json.key("line");
    json.value(frame.line);
    json.key("function");
    json.value(frame.function);
}

} // namespace

void
writeStatsJson(JsonWriter& json, const std::vector<StatDiff>& stats, GroupBy by, std::string_view mode,
               size_t top) {
    json.beginArray();
    size_t shown = top == 0 ? stats.size() : std::min(top, stats.size());
    for (size_t i = 0; i < shown; ++i) {
        const StatDiff& stat = stats[i];
        json.beginObject();
        writeFrameFields(json, stat.key.front());
        if (stat.thread) {
            json.key("tid");
            json.value(stat.thread->tid);
            json.key("thread_name");
            json.value(stat.thread->name);
            json.key("thread_state");
            json.value(stat.thread->state.empty() ? std::string_view("unknown")
                                                  : std::string_view(stat.thread->state));
        }
        if (by == GroupBy::User) {
            json.key("user_frame");
            json.value(stat.userFrame);
        }
        if (stat.domain != 0) {
            json.key("domain");
            json.value(stat.domain);
            json.key("domain_name");
            json.value(stat.domainLabel);
        }
        json.key("size");
        json.value(stat.size);
        json.key("size_diff");
        json.value(stat.sizeDiff);
        json.key("count");
        json.value(stat.count);
        json.key("count_diff");
        json.value(stat.countDiff);
        if (stat.samples >= 0) {
            json.key("samples");
            json.value(stat.samples);
        }
        if (stat.oldSamples >= 0) {
            json.key("samples_old");
            json.value(stat.oldSamples);
        }
        if (stat.samples >= 0 && stat.oldSamples >= 0) {
            json.key("rough");
            json.value(fewSamples(stat, mode == "sampled").has_value());
        }
        json.key("traceback");
        json.beginArray();
        for (const Frame& frame : stat.key) {
            json.beginObject();
            writeFrameFields(json, frame);
            json.endObject();
        }
        json.endArray();
        json.endObject();
    }
    json.endArray();
}

std::string
renderDiffJson(const std::vector<StatDiff>& stats, int pid, std::string_view oldName,
               std::string_view newName, GroupBy by, std::string_view mode, size_t top,
               const DiffContext& context) {
    JsonWriter json;
    json.beginObject();
    json.key("pid");
    json.value(pid);
    json.key("old");
    json.value(oldName);
    json.key("new");
    json.value(newName);
    json.key("by");
    json.value(name(by));
    json.key("mode");
    json.value(mode);
    json.key("estimated");
    json.value(mode == "sampled");
    if (context.rssBytes >= 0) {
        json.key("rss_bytes");
        json.value(context.rssBytes);
    }
    if (context.mallocFreeBytes >= 0) {
        json.key("malloc_free_bytes");
        json.value(context.mallocFreeBytes);
    }
    if (context.attachedAtUnixMs >= 0) {
        json.key("attached_at_unix_ms");
        json.value(context.attachedAtUnixMs);
    }
    if (context.rssAtAttachBytes >= 0) {
        json.key("rss_at_attach_bytes");
        json.value(context.rssAtAttachBytes);
    }
    if (!context.warning.empty()) {
        json.key("warning");
        json.value(context.warning);
    }
    if (context.memory != nullptr) {
        json.key("memory");
        json.beginObject();
        writeBreakdownJson(json, *context.memory, explainMemory(*context.memory));
        json.endObject();
    }
    json.key("stats");
    writeStatsJson(json, stats, by, mode, top);
    json.endObject();
    return json.str();
}

} // namespace memtap::report
