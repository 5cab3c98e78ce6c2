#include "report/speedscope.h"

#include <fmt/format.h>

#include <map>
#include <tuple>
#include <vector>

#include "report/diff.h"
#include "report/json.h"

namespace memtap::report {
namespace {

// The shared frame table: one entry per (function, file, line).
class FrameTable {
public:
    size_t indexOf(const Frame& frame) {
        auto key = std::make_tuple(frame.function, frame.file, frame.line);
        auto [it, inserted] = index_.try_emplace(key, frames_.size());
        if (inserted) {
            frames_.push_back(frame);
        }
        return it->second;
    }
    const std::vector<Frame>& frames() const { return frames_; }

private:
    std::map<std::tuple<std::string, std::string, int>, size_t> index_;
    std::vector<Frame> frames_;
};

struct Sample {
    std::vector<size_t> stack; // outermost first
    int64_t size = 0;
    int64_t growth = 0;
};

void
writeProfile(JsonWriter& json, const std::string& name, const std::vector<Sample>& samples,
             bool growth) {
    int64_t total = 0;
    for (const Sample& s : samples) {
        total += growth ? std::max<int64_t>(0, s.growth) : s.size;
    }
    json.beginObject();
    json.key("type");
    json.value("sampled");
    json.key("name");
    json.value(name);
    json.key("unit");
    json.value("bytes");
    json.key("startValue");
    json.value(int64_t{0});
    json.key("endValue");
    json.value(total);
    json.key("samples");
    json.beginArray();
    for (const Sample& s : samples) {
        if (growth ? s.growth > 0 : s.size > 0) {
            json.beginArray();
            for (size_t index : s.stack) {
                json.value(index);
            }
            json.endArray();
        }
    }
    json.endArray();
    json.key("weights");
    json.beginArray();
    for (const Sample& s : samples) {
        if (growth ? s.growth > 0 : s.size > 0) {
            json.value(growth ? s.growth : s.size);
        }
    }
    json.endArray();
    json.endObject();
}

} // namespace

std::string
renderSpeedscope(const Snapshot& older, const Snapshot& newer, const SpeedscopeOptions& options) {
    FrameTable table;
    // Memory allocated with no Python frame on the stack still needs a frame.
    const Frame unknown{"<unknown>", 0, "<no Python frame>"};
    std::vector<Sample> samples;
    for (const StatDiff& stat : compareSnapshots(older, newer, GroupBy::Traceback)) {
        Sample sample;
        for (auto frame = stat.key.rbegin(); frame != stat.key.rend(); ++frame) {
            sample.stack.push_back(table.indexOf(*frame));
        }
        if (sample.stack.empty()) {
            sample.stack.push_back(table.indexOf(unknown));
        }
        sample.size = stat.size;
        sample.growth = stat.sizeDiff;
        samples.push_back(std::move(sample));
    }
    bool sampled = newer.mode == "sampled";
    JsonWriter json;
    json.beginObject();
    json.key("$schema");
    json.value("https://www.speedscope.app/file-format-schema.json");
    json.key("name");
    json.value(options.title.empty() ? fmt::format("{} -> {}", options.oldName, options.newName)
                                     : options.title);
    json.key("exporter");
    json.value(
        fmt::format("memtap diff ({} mode{})", newer.mode, sampled ? ": figures are estimates" : ""));
    json.key("activeProfileIndex");
    json.value(1); // the growth, as the other formats open on it
    json.key("shared");
    json.beginObject();
    json.key("frames");
    json.beginArray();
    for (const Frame& frame : table.frames()) {
        json.beginObject();
        json.key("name");
        json.value(frame.function.empty() ? std::string("<unknown>") : frame.function);
        json.key("file");
        json.value(frame.file);
        json.key("line");
        json.value(frame.line);
        json.endObject();
    }
    json.endArray();
    json.endObject();
    json.key("profiles");
    json.beginArray();
    writeProfile(json, fmt::format("{}: bytes held", options.newName), samples, false);
    writeProfile(json, fmt::format("{} -> {}: growth", options.oldName, options.newName), samples, true);
    json.endArray();
    json.endObject();
    return json.str() + "\n";
}

} // namespace memtap::report
