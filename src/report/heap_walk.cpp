#include "report/heap_walk.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>

#include "base/error.h"
#include "report/json.h"
#include "report/text_report.h"

namespace memtap::report {

namespace {

std::vector<std::string_view>
splitTabs(std::string_view line) {
    std::vector<std::string_view> fields;
    size_t start = 0;
    for (;;) {
        size_t tab = line.find('\t', start);
        fields.push_back(line.substr(start, tab == std::string_view::npos ? tab : tab - start));
        if (tab == std::string_view::npos) {
            return fields;
        }
        start = tab + 1;
    }
}

int64_t
fieldNumberOrThrow(std::string_view text, std::string_view line) {
    int64_t v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size() || v < 0) {
        throw Error(
            ExitCode::Failure, fmt::format("the agent's heap walk reply has a bad line: \"{}\"", line),
            "a memtap of another version may have attached; `memtap detach PID` and attach again");
    }
    return v;
}

std::string
count(int64_t n) {
    std::string digits = std::to_string(n < 0 ? -n : n);
    std::string out;
    for (size_t i = 0; i < digits.size(); ++i) {
        if (i != 0 && (digits.size() - i) % 3 == 0) {
            out += ',';
        }
        out += digits[i];
    }
    return (n < 0 ? "-" : "") + out;
}

std::string
signedCount(int64_t n) {
    return (n > 0 ? "+" : "") + count(n);
}

// "['path']" for a named key, "[<str>]" for a key of a big table.
std::string
keyPart(const HeapLink& link) {
    if (!link.name.empty() && link.name.front() == '<') {
        return "[" + link.name + "]";
    }
    return "['" + link.name + "']";
}

std::string
linkPart(const HeapLink& link) {
    if (link.kind == "module") {
        return link.name;
    }
    if (link.kind == "local") {
        return "<local " + link.name + ">";
    }
    if (link.kind == "gc") {
        return "gc.garbage";
    }
    if (link.kind == "cycle") {
        return "<reference cycle>";
    }
    if (link.kind == "external") {
        return "<held outside Python>";
    }
    if (link.kind == "unreached") {
        return "<unreached>";
    }
    if (link.kind == "attr") {
        return "." + link.name;
    }
    if (link.kind == "key") {
        return keyPart(link);
    }
    if (link.kind == "item") {
        return "[]";
    }
    if (link.kind == "member") {
        return "{}";
    }
    if (link.kind == "key-of") {
        return ".<key>";
    }
    if (link.kind == "dict" || link.kind == "cell") {
        return ""; // an object's __dict__, a closure's cell: read through
    }
    return "->" + link.type;
}

std::string
describeLink(const HeapLink& link) {
    if (!link.object.empty() && link.kind != "module") {
        return fmt::format("{} {}", link.type == "type" ? "class" : link.type, link.object);
    }
    return link.type;
}

} // namespace

std::string
HeapWalk::text(const std::string& key) const {
    auto it = values.find(key);
    return it == values.end() ? "" : it->second;
}

std::string
HeapWalk::state() const {
    std::string s = text("heap_walk_state");
    return s.empty() ? "none" : s;
}

std::string
HeapWalk::result() const {
    return text("walk_result");
}

int64_t
HeapWalk::number(const std::string& key) const {
    auto it = values.find(key);
    int64_t v = 0;
    if (it == values.end()) {
        return 0;
    }
    auto [end, ec] = std::from_chars(it->second.data(), it->second.data() + it->second.size(), v);
    return ec == std::errc() && end == it->second.data() + it->second.size() ? v : 0;
}

HeapWalk
HeapWalk::parseOrThrow(std::string_view payload) {
    HeapWalk walk;
    size_t pending = 0; // links still owed to the last chain
    while (!payload.empty()) {
        size_t nl = payload.find('\n');
        std::string_view line = payload.substr(0, nl);
        payload = nl == std::string_view::npos ? std::string_view() : payload.substr(nl + 1);
        if (line.starts_with("chain\t")) {
            auto f = splitTabs(line);
            if (f.size() != 5) {
                fieldNumberOrThrow("x", line);
            }
            HeapChain chain;
            chain.objects = fieldNumberOrThrow(f[1], line);
            chain.bytes = fieldNumberOrThrow(f[2], line);
            pending = static_cast<size_t>(fieldNumberOrThrow(f[3], line));
            chain.shared = static_cast<size_t>(fieldNumberOrThrow(f[4], line));
            walk.chains.push_back(std::move(chain));
        } else if (line.starts_with("link\t")) {
            auto f = splitTabs(line);
            if (f.size() != 5 || pending == 0 || walk.chains.empty()) {
                fieldNumberOrThrow("x", line);
            }
            walk.chains.back().links.push_back(
                HeapLink{std::string(f[1]), std::string(f[2]), std::string(f[3]), std::string(f[4])});
            --pending;
        } else if (line.starts_with("type\t") || line.starts_with("cycle\t") ||
                   line.starts_with("cyclesite\t")) {
            auto f = splitTabs(line);
            if (f.size() != 4) {
                fieldNumberOrThrow("x", line);
            }
            auto& rows = line.starts_with("type\t")    ? walk.types
                         : line.starts_with("cycle\t") ? walk.cycles
                                                       : walk.cycleSites;
            rows.push_back(HeapTypeRow{std::string(f[3]), fieldNumberOrThrow(f[1], line),
                                       fieldNumberOrThrow(f[2], line)});
        } else {
            size_t space = line.find(' ');
            if (space != std::string_view::npos) {
                walk.values[std::string(line.substr(0, space))] = std::string(line.substr(space + 1));
            }
        }
    }
    if (pending != 0) {
        fieldNumberOrThrow("x", "(a chain with missing links)");
    }
    return walk;
}

std::string
chainPath(const HeapChain& chain) {
    std::string path;
    for (size_t i = 0; i + 1 < chain.links.size(); ++i) {
        path += linkPart(chain.links[i]);
    }
    return path;
}

std::string
chainHolder(const HeapChain& chain) {
    const auto& links = chain.links;
    // What no root reaches: each object is held by its own (a cycle's
    // nodes, say), so name the kind of root and the last reference.
    if (links.size() >= 2 &&
        (links[0].kind == "cycle" || links[0].kind == "external" || links[0].kind == "unreached")) {
        size_t owner = links.size() - 2;
        while (owner > 0 && links[owner].kind == "dict") {
            --owner;
        }
        return linkPart(links[0]) + " " + links[owner].type + linkPart(links.back());
    }
    size_t deepest = std::min(chain.shared, links.size());
    if (deepest == 0) {
        return "";
    }
    size_t i = deepest - 1;
    while (i > 0 && links[i].kind == "dict") {
        --i;
    }
    const HeapLink& held = links[i];
    if (i == 0) {
        return linkPart(held);
    }
    if (held.kind != "attr" && held.kind != "key") {
        HeapChain upTo{0, 0, 0, {links.begin(), links.begin() + static_cast<ptrdiff_t>(i) + 2}};
        return chainPath(upTo);
    }
    size_t owner = i - 1;
    while (owner > 0 && links[owner].kind == "dict") {
        --owner;
    }
    const HeapLink& o = links[owner];
    std::string ownerName = !o.object.empty() ? o.object : o.kind == "local" ? linkPart(o) : o.type;
    return ownerName + (held.kind == "attr" ? "." + held.name : keyPart(held));
}

std::string
walkCostText(const HeapWalk& walk) {
    auto counted = [](int64_t n, const char* one, const char* many) {
        return fmt::format("{} {}", count(n), n == 1 ? one : many);
    };
    return fmt::format(
        "{} objects ({}, {}, {}) walked in {:.0f} ms, {} of memtap's memory in the target, given "
        "back",
        count(walk.number("walk_objects")), counted(walk.number("walk_modules"), "module", "modules"),
        counted(walk.number("walk_threads"), "thread", "threads"),
        counted(walk.number("walk_frames"), "frame", "frames"),
        static_cast<double>(walk.number("walk_ns")) / 1e6,
        formatSize(static_cast<double>(walk.number("walk_mapped_bytes")), false));
}

std::string
gcListsText(const HeapWalk& walk) {
    std::string lists = walk.text("gc_lists");
    if (lists == "read") {
        return fmt::format(
            "{} objects on the gc's lists; not reached from a module or a frame: {} in reference "
            "cycles reachable only from each other (garbage the gc has not collected yet), {} held "
            "from outside (C code, an extension, the interpreter's own state); {} finalized "
            "(__del__ ran) and alive",
            count(walk.number("gc_listed")), count(walk.number("gc_cycle_objects")),
            count(walk.number("gc_external_objects")), count(walk.number("gc_finalized")));
    }
    if (lists == "collecting") {
        return "the gc's lists were not read: a collection was running";
    }
    if (lists == "not-read" || lists == "truncated") {
        return "the gc's lists were not read to the end: the walk reached --max-objects";
    }
    return "the gc's lists were not read: memtap cannot find them on this interpreter build";
}

std::string
renderRefsText(const HeapWalk& walk, const RefsView& view) {
    std::string out;
    int64_t objects = walk.number("site_objects");
    int64_t traced = walk.number("site_traced_records");
    out += fmt::format("process {}: {} live objects allocated at {} were reached ({}){}\n", view.pid,
                       count(objects), view.site,
                       formatSize(static_cast<double>(walk.number("site_object_bytes")), false),
                       view.exact ? "" : ", of those the sampled mode traced");
    out += "walk: " + walkCostText(walk) + "\n";
    out += "gc: " + gcListsText(walk) + "\n";
    if (int64_t finalized = walk.number("site_finalized"); finalized > 0) {
        out += fmt::format(
            "resurrected: {} of them had their finalizer (__del__) run and were kept alive after\n",
            count(finalized));
    }
    if (walk.result() == "truncated") {
        out += fmt::format(
            "note: the walk stopped at {} objects (--max-objects): objects past them are not "
            "counted\n",
            count(walk.number("walk_max_objects")));
    }
    size_t shown = std::min(view.top, walk.chains.size());
    for (size_t i = 0; i < shown; ++i) {
        const HeapChain& chain = walk.chains[i];
        std::string holder = chainHolder(chain);
        out += fmt::format("\n#{} {} objects, {}{}\n", i + 1, count(chain.objects),
                           formatSize(static_cast<double>(chain.bytes), false),
                           holder.empty() ? "" : ", held by " + holder);
        out += "    " + chainPath(chain) + " -> " + chain.links.back().type + "\n";
        for (size_t k = 0; k < chain.links.size(); ++k) {
            const HeapLink& link = chain.links[k];
            if (link.kind == "dict") {
                continue;
            }
            std::string part = k + 1 == chain.links.size() ? "(the site's objects)" : linkPart(link);
            out += fmt::format(
                "      {:<28} {}{}\n", part.empty() ? "(cell)" : part, describeLink(link),
                k + 1 == chain.shared && chain.objects > 1 ? "   <- one object holds them all" : "");
        }
    }
    if (walk.chains.size() > shown) {
        out += fmt::format("\n({} more chains; --top shows more)\n", walk.chains.size() - shown);
    }
    int64_t unreached = traced - objects;
    bool listsRead = walk.text("gc_lists") == "read";
    if (unreached > 0 && listsRead) {
        out += fmt::format(
            "\nnot objects: {} of the {} blocks traced at that line are item arrays and buffers of "
            "objects, or objects the gc does not track that nothing walked reaches\n",
            count(unreached), count(traced));
    } else if (unreached > 0) {
        out += fmt::format(
            "\nnot reached: {} of the {} blocks traced at that line: item arrays and buffers of "
            "objects, or objects held only by each other (a cycle awaiting the gc) or by C code\n",
            count(unreached), count(traced));
    }
    if (traced == 0) {
        out += "\nnothing traced at that line now: check FILE:LINE against `memtap diff` or `memtap "
               "watch`\n";
    }
    return out;
}

std::string
renderRefsJson(const HeapWalk& walk, const RefsView& view) {
    JsonWriter j;
    j.beginObject();
    j.key("pid");
    j.value(view.pid);
    j.key("site");
    j.value(view.site);
    j.key("mode");
    j.value(view.exact ? "exact" : "sampled");
    for (const char* key :
         {"site_objects", "site_object_bytes", "site_traced_records", "site_traced_bytes",
          "site_finalized", "walk_objects", "walk_gc_objects", "walk_ns", "walk_mapped_bytes",
          "gc_listed", "gc_finalized", "gc_cycle_objects", "gc_external_objects"}) {
        j.key(key);
        j.value(walk.number(key));
    }
    j.key("walk_result");
    j.value(walk.result());
    j.key("gc_lists");
    j.value(walk.text("gc_lists"));
    j.key("chains");
    j.beginArray();
    for (size_t i = 0; i < walk.chains.size() && i < view.top; ++i) {
        const HeapChain& chain = walk.chains[i];
        j.beginObject();
        j.key("objects");
        j.value(chain.objects);
        j.key("bytes");
        j.value(chain.bytes);
        j.key("holder");
        j.value(chainHolder(chain));
        j.key("path");
        j.value(chainPath(chain));
        j.key("shared");
        j.value(chain.shared);
        j.key("links");
        j.beginArray();
        for (const HeapLink& link : chain.links) {
            j.beginObject();
            j.key("kind");
            j.value(link.kind);
            j.key("name");
            j.value(link.name);
            j.key("type");
            j.value(link.type);
            j.key("object");
            j.value(link.object);
            j.endObject();
        }
        j.endArray();
        j.endObject();
    }
    j.endArray();
    j.endObject();
    return j.str() + "\n";
}

namespace {

struct TypeGrowth {
    HeapTypeRow now;
    int64_t countDelta = 0;
    int64_t bytesDelta = 0;
};

std::vector<TypeGrowth>
typeGrowth(const std::vector<HeapTypeRow>& newer, const std::vector<HeapTypeRow>* older) {
    std::map<std::string, HeapTypeRow> before;
    if (older != nullptr) {
        for (const HeapTypeRow& r : *older) {
            before[r.name] = r;
        }
    }
    std::vector<TypeGrowth> rows;
    for (const HeapTypeRow& r : newer) {
        auto it = before.find(r.name);
        int64_t c = it == before.end() ? 0 : it->second.count;
        int64_t b = it == before.end() ? 0 : it->second.bytes;
        rows.push_back(TypeGrowth{r, r.count - c, r.bytes - b});
    }
    bool growth = older != nullptr;
    std::sort(rows.begin(), rows.end(), [growth](const TypeGrowth& a, const TypeGrowth& b) {
        if (growth && a.bytesDelta != b.bytesDelta) {
            return a.bytesDelta > b.bytesDelta;
        }
        return a.now.bytes != b.now.bytes ? a.now.bytes > b.now.bytes : a.now.name < b.now.name;
    });
    return rows;
}

// "KEY": [{"NAME_KEY": name, "count": N, "size": N}, ...]
void
writeRows(JsonWriter& j, const char* key, const char* nameKey, const std::vector<HeapTypeRow>& rows) {
    j.key(key);
    j.beginArray();
    for (const HeapTypeRow& r : rows) {
        j.beginObject();
        j.key(nameKey);
        j.value(r.name);
        j.key("count");
        j.value(r.count);
        j.key("size");
        j.value(r.bytes);
        j.endObject();
    }
    j.endArray();
}

} // namespace

std::string
renderTypesText(const HeapWalk& newer, const HeapWalk* older, const TypesView& view) {
    std::string out = fmt::format("process {}: {}\n", view.pid, walkCostText(newer));
    if (older != nullptr) {
        out += fmt::format("growth over {:.1f} s, between two walks, largest growth of size first\n",
                           view.intervalSeconds);
    }
    out +=
        "sizes: each object's own block (header, fixed part, items; a str's characters, a list's item "
        "array; not dict or set tables)\n\n";
    auto rows = typeGrowth(newer.types, older != nullptr ? &older->types : nullptr);
    if (older != nullptr) {
        out +=
            fmt::format("{:>12} {:>11} {:>10} {:>11}  {}\n", "count", "+count", "size", "+size", "type");
    } else {
        out += fmt::format("{:>12} {:>10}  {}\n", "count", "size", "type");
    }
    for (size_t i = 0; i < rows.size() && (view.top == 0 || i < view.top); ++i) {
        const TypeGrowth& r = rows[i];
        if (older != nullptr) {
            out += fmt::format("{:>12} {:>11} {:>10} {:>11}  {}\n", count(r.now.count),
                               signedCount(r.countDelta),
                               formatSize(static_cast<double>(r.now.bytes), false),
                               formatSize(static_cast<double>(r.bytesDelta), true), r.now.name);
        } else {
            out += fmt::format("{:>12} {:>10}  {}\n", count(r.now.count),
                               formatSize(static_cast<double>(r.now.bytes), false), r.now.name);
        }
    }
    if (newer.result() == "truncated") {
        out += fmt::format("note: the walk stopped at {} objects (--max-objects)\n",
                           count(newer.number("walk_max_objects")));
    }
    out += "\ngc: " + gcListsText(newer) + "\n";
    if (!newer.cycles.empty()) {
        out += "in reference cycles reachable only from each other (the gc has not collected them):\n";
        auto rows = typeGrowth(newer.cycles, nullptr);
        for (size_t i = 0; i < rows.size() && (view.top == 0 || i < view.top); ++i) {
            out +=
                fmt::format("{:>12} {:>10}  {}\n", count(rows[i].now.count),
                            formatSize(static_cast<double>(rows[i].now.bytes), false), rows[i].now.name);
        }
        if (!newer.cycleSites.empty()) {
            out +=
                fmt::format("allocated at (traced blocks; {} more objects untraced: from before attach, "
                            "or not sampled):\n",
                            count(newer.number("gc_cycle_untraced")));
            for (const HeapTypeRow& r : newer.cycleSites) {
                out += fmt::format("{:>12} {:>10}  {}\n", count(r.count),
                                   formatSize(static_cast<double>(r.bytes), false), r.name);
            }
        }
    }
    return out;
}

std::string
renderTypesJson(const HeapWalk& newer, const HeapWalk* older, const TypesView& view) {
    JsonWriter j;
    j.beginObject();
    j.key("pid");
    j.value(view.pid);
    for (const char* key : {"walk_objects", "walk_gc_objects", "walk_ns", "walk_mapped_bytes",
                            "gc_listed", "gc_finalized", "gc_cycle_objects", "gc_external_objects"}) {
        j.key(key);
        j.value(newer.number(key));
    }
    j.key("walk_result");
    j.value(newer.result());
    j.key("gc_lists");
    j.value(newer.text("gc_lists"));
    std::vector<HeapTypeRow> cycles;
    for (const TypeGrowth& r : typeGrowth(newer.cycles, nullptr)) {
        cycles.push_back(r.now); // largest first
    }
    writeRows(j, "cycles", "type", cycles);
    writeRows(j, "cycle_sites", "site", newer.cycleSites);
    j.key("gc_cycle_untraced");
    j.value(newer.number("gc_cycle_untraced"));
    if (older != nullptr) {
        j.key("interval_seconds");
        j.value(view.intervalSeconds);
    }
    j.key("types");
    j.beginArray();
    auto rows = typeGrowth(newer.types, older != nullptr ? &older->types : nullptr);
    for (size_t i = 0; i < rows.size() && (view.top == 0 || i < view.top); ++i) {
        j.beginObject();
        j.key("type");
        j.value(rows[i].now.name);
        j.key("count");
        j.value(rows[i].now.count);
        j.key("size");
        j.value(rows[i].now.bytes);
        if (older != nullptr) {
            j.key("count_diff");
            j.value(rows[i].countDelta);
            j.key("size_diff");
            j.value(rows[i].bytesDelta);
        }
        j.endObject();
    }
    j.endArray();
    j.endObject();
    return j.str() + "\n";
}

} // namespace memtap::report
