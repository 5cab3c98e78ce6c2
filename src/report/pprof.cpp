#include "report/pprof.h"

#include <fmt/format.h>

#include <cstdint>
#include <map>
#include <string_view>
#include <tuple>
#include <vector>

#include "report/diff.h"
#include "report/gzip_writer.h"

namespace memtap::report {
namespace {

// Protocol buffers wire format (protobuf.dev/programming-guides/encoding):
// a field is a varint key (number << 3 | wire type) and its value; wire type
// 0 is a varint, 2 a length-delimited byte string (strings, nested
// messages, packed repeated varints). int64 values are written as their
// two's complement in 64 bits, so a negative one takes ten bytes.
class ProtoWriter {
public:
    void varint(int field, uint64_t value) {
        key(field, 0);
        raw(value);
    }
    void int64(int field, int64_t value) { varint(field, static_cast<uint64_t>(value)); }
    void bytes(int field, std::string_view value) {
        key(field, 2);
        raw(value.size());
        out_.append(value);
    }
    void packed(int field, const std::vector<uint64_t>& values) {
        ProtoWriter inner;
        for (uint64_t v : values) {
            inner.raw(v);
        }
        bytes(field, inner.str());
    }
    const std::string& str() const { return out_; }

private:
    void key(int field, int wireType) {
        raw(static_cast<uint64_t>(field) << 3 | static_cast<uint64_t>(wireType));
    }
    void raw(uint64_t v) {
        while (v >= 0x80) {
            out_.push_back(static_cast<char>((v & 0x7f) | 0x80));
            v >>= 7;
        }
        out_.push_back(static_cast<char>(v));
    }
    std::string out_;
};

// Field numbers of proto/profile.proto (package perftools.profiles).
namespace profile {
constexpr int kSampleType = 1, kSample = 2, kLocation = 4, kFunction = 5, kStringTable = 6,
              kPeriodType = 11, kPeriod = 12, kComment = 13, kDefaultSampleType = 14;
}
namespace value_type {
constexpr int kType = 1, kUnit = 2;
}
namespace sample {
constexpr int kLocationId = 1, kValue = 2;
}
namespace location {
constexpr int kId = 1, kLine = 4;
}
namespace line {
constexpr int kFunctionId = 1, kLine = 2;
}
namespace function {
constexpr int kId = 1, kName = 2, kSystemName = 3, kFilename = 4;
}

class ProfileBuilder {
public:
    ProfileBuilder() { stringId(""); } // string_table[0] must be ""

    int64_t stringId(const std::string& s) {
        auto [it, inserted] = strings_.try_emplace(s, static_cast<int64_t>(table_.size()));
        if (inserted) {
            table_.push_back(s);
        }
        return it->second;
    }

    uint64_t locationId(const Frame& frame) {
        uint64_t fn = functionId(frame.function.empty() ? "<unknown>" : frame.function, frame.file);
        auto key = std::make_pair(fn, static_cast<int64_t>(frame.line));
        auto [it, inserted] = locations_.try_emplace(key, locations_.size() + 1);
        if (inserted) {
            ProtoWriter lineMsg;
            lineMsg.varint(line::kFunctionId, fn);
            lineMsg.int64(line::kLine, frame.line);
            ProtoWriter loc;
            loc.varint(location::kId, it->second);
            loc.bytes(location::kLine, lineMsg.str());
            locationMessages_.push_back(loc.str());
        }
        return it->second;
    }

    std::vector<std::string> locationMessages_;
    std::vector<std::string> functionMessages_;
    std::vector<std::string> table_;

private:
    uint64_t functionId(const std::string& name, const std::string& file) {
        auto [it, inserted] = functions_.try_emplace(std::make_pair(name, file), functions_.size() + 1);
        if (inserted) {
            ProtoWriter fn;
            fn.varint(function::kId, it->second);
            fn.int64(function::kName, stringId(name));
            fn.int64(function::kSystemName, stringId(name));
            fn.int64(function::kFilename, stringId(file));
            functionMessages_.push_back(fn.str());
        }
        return it->second;
    }

    std::map<std::string, int64_t> strings_;
    std::map<std::pair<std::string, std::string>, uint64_t> functions_;
    std::map<std::pair<uint64_t, int64_t>, uint64_t> locations_;
};

std::string
valueType(ProfileBuilder& b, const char* type, const char* unit) {
    ProtoWriter vt;
    vt.int64(value_type::kType, b.stringId(type));
    vt.int64(value_type::kUnit, b.stringId(unit));
    return vt.str();
}

} // namespace

std::string
encodePprofProfile(const Snapshot& older, const Snapshot& newer, const PprofOptions& options) {
    ProfileBuilder b;
    ProtoWriter out;
    for (auto [type, unit] :
         {std::pair{"inuse_space", "bytes"}, std::pair{"inuse_objects", "count"},
          std::pair{"growth_space", "bytes"}, std::pair{"growth_objects", "count"}}) {
        out.bytes(profile::kSampleType, valueType(b, type, unit));
    }
    // A traceback with no Python frame (allocated from C with none on the
    // stack) still needs one location to be shown.
    const Frame unknown{"<unknown>", 0, "<no Python frame>"};
    for (const StatDiff& stat : compareSnapshots(older, newer, GroupBy::Traceback)) {
        std::vector<uint64_t> locations;
        for (const Frame& frame : stat.key) {
            locations.push_back(b.locationId(frame));
        }
        if (locations.empty()) {
            locations.push_back(b.locationId(unknown));
        }
        ProtoWriter s;
        s.packed(sample::kLocationId, locations);
        s.packed(sample::kValue,
                 {static_cast<uint64_t>(stat.size), static_cast<uint64_t>(stat.count),
                  static_cast<uint64_t>(stat.sizeDiff), static_cast<uint64_t>(stat.countDiff)});
        out.bytes(profile::kSample, s.str());
    }
    for (const auto& loc : b.locationMessages_) {
        out.bytes(profile::kLocation, loc);
    }
    for (const auto& fn : b.functionMessages_) {
        out.bytes(profile::kFunction, fn);
    }
    bool sampled = newer.mode == "sampled";
    out.bytes(profile::kPeriodType, valueType(b, "space", "bytes"));
    if (sampled && newer.sampleBytes > 0) {
        out.int64(profile::kPeriod, static_cast<int64_t>(newer.sampleBytes));
    }
    out.int64(profile::kComment, b.stringId(fmt::format("memtap diff {} -> {} ({} mode{})",
                                                        options.oldName, options.newName, newer.mode,
                                                        sampled ? ": figures are estimates" : "")));
    out.int64(profile::kDefaultSampleType, b.stringId("growth_space"));
    // Strings last: every message above has added the ones it uses.
    for (const auto& s : b.table_) {
        out.bytes(profile::kStringTable, s);
    }
    return out.str();
}

std::string
renderPprof(const Snapshot& older, const Snapshot& newer, const PprofOptions& options) {
    return gzipStored(encodePprofProfile(older, newer, options));
}

} // namespace memtap::report
