// "refs": the chains of references that keep a site's objects alive.
//
// The site's objects are the walk's nodes whose own block the engine traces
// at the site (all of them in exact mode, the sampled ones in sampled mode),
// or, for a dict or a list, whose keys table or item array it traces there:
// CPython hands out freed dicts and lists again from free lists without
// calling the allocator, so such an object's own block keeps the line that
// first allocated it, while its table is allocated where it is filled. A
// bytearray counts by its buffer too: in sampled mode the big buffer is
// what gets sampled, rarely the small object.
// Each is reached through its parent, and so on up to a root: that chain,
// written link by link (kind, name, type), is what a person reads. Objects
// whose chains read the same are counted together; a chain also says how
// many of its leading links are the same objects for all of them, which is
// where the holder is (a list they were appended to, say).
//
// Link names are found only for nodes on some chain, once per parent: a
// dict is scanned once with PyDict_Next to name all its values at a time.
#include "agent/engine.h"
#include "agent/heap_context.h"
#include "agent/python_frames.h"
#include "agent/python_objects.h"

#include <algorithm>
#include <cstring>

namespace memtap_agent {

using pyobj::flagsOf;
using pyobj::ptrAt;
using pyobj::readAt;
using pyobj::typeOf;

namespace {

constexpr uint32_t kMaxTargets = uint32_t{1} << 22;
constexpr uint32_t kMaxLinks = 32;
constexpr size_t kChainSlots = size_t{1} << 14;
// A data dict (not a __dict__) names its keys when it has at most this many
// entries; a bigger one is a table (a cache, a registry) and its links read
// "<KEYTYPE>" so that its values' chains count together.
constexpr int64_t kNamedKeysMax = 32;

enum Edge : uint8_t { kUnknown, kRoot, kDict, kKey, kDictKey, kItem, kMember, kCell, kRef };
constexpr uint8_t kScanned = 0x80;

struct Target {
    uint32_t node;
    uint32_t parent;
    const void* type;
    uint64_t bytes;
};

struct Chain {
    uint64_t hash; // 0: free slot
    uint64_t objects;
    uint64_t bytes;
    size_t textOffset;
    uint32_t textLength;
    uint32_t links;
    uint32_t shared; // leading path nodes that are the same for every object
    uint32_t pathLength;
    uint32_t path[kMaxLinks];
};

uint64_t
hashText(const char* p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; ++i) {
        h = (h ^ static_cast<unsigned char>(p[i])) * 0x100000001b3ULL;
    }
    return h | 1;
}

class Labels {
public:
    Labels(HeapContext& c) : c_(c) {}
    bool init() noexcept {
        size_t n = c_.graph.size();
        if (!keyMap_.allocate(n * sizeof(void*)) || !kindMap_.allocate(n)) {
            return false;
        }
        keys_ = static_cast<const void**>(keyMap_.get());
        kinds_ = static_cast<uint8_t*>(kindMap_.get());
        return true;
    }
    Edge edge(uint32_t n) noexcept {
        if ((kinds_[n] & ~kScanned) == kUnknown) {
            compute(n);
        }
        return static_cast<Edge>(kinds_[n] & ~kScanned);
    }
    const void* key(uint32_t n) const noexcept { return keys_[n]; }

private:
    void set(uint32_t n, Edge e, const void* key = nullptr) {
        kinds_[n] = static_cast<uint8_t>((kinds_[n] & kScanned) | e);
        keys_[n] = key;
    }
    // Names every value and key of the dict at node p that p reached first.
    void scanDict(uint32_t p) {
        if (kinds_[p] & kScanned) {
            return;
        }
        kinds_[p] |= kScanned;
        long pos = 0;
        void* key = nullptr;
        void* value = nullptr;
        while (c_.heap.dictNext(const_cast<void*>(c_.graph.at(p).object), &pos, &key, &value) != 0) {
            uint32_t v = c_.graph.find(value);
            if (v != kNoNode && c_.graph.at(v).parent == p && (kinds_[v] & ~kScanned) == kUnknown) {
                set(v, kKey, key);
            }
            uint32_t k = c_.graph.find(key);
            if (k != kNoNode && c_.graph.at(k).parent == p && (kinds_[k] & ~kScanned) == kUnknown) {
                set(k, kDictKey, key);
            }
        }
    }
    void compute(uint32_t n) {
        const HeapNode& node = c_.graph.at(n);
        if (node.parent == kNoNode) {
            set(n, kRoot);
            return;
        }
        const void* parent = c_.graph.at(node.parent).object;
        const void* child = node.object;
        const void* type = typeOf(parent);
        const HeapApi& h = c_.heap;
        if (type == h.moduleType) {
            set(n, ptrAt(parent, layouts::kModuleDict) == child ? kDict : kRef);
        } else if (type == h.dictType) {
            scanDict(node.parent);
            if ((kinds_[n] & ~kScanned) == kUnknown) {
                set(n, kRef);
            }
        } else if (type == h.listType || type == h.tupleType) {
            set(n, kItem);
        } else if (type == h.setType || type == h.frozenSetType) {
            set(n, kMember);
        } else if (type == h.cellType) {
            set(n, kCell);
        } else if ((flagsOf(type) & layouts::kTpFlagsTypeSubclass) != 0) {
            set(n, ptrAt(parent, layouts::kTpDict) == child ? kDict : kRef);
        } else if (pyobj::instanceDict(parent, type, c_.layout) == child) {
            set(n, kDict);
        } else {
            set(n, kRef);
            pyobj::InstanceValues iv = pyobj::instanceValues(parent, type, c_.layout);
            for (int64_t i = 0; iv.values != nullptr; ++i) {
                const void* key = pyobj::splitKey(iv.keys, i);
                if (key == nullptr) {
                    break;
                }
                if (iv.values[i] == child) {
                    set(n, kKey, key); // an attribute: the parent is no dict
                    break;
                }
            }
        }
    }

    HeapContext& c_;
    Mapping keyMap_;
    Mapping kindMap_;
    const void** keys_ = nullptr;
    uint8_t* kinds_ = nullptr;
};

class ChainWriter {
public:
    ChainWriter(HeapContext& c, Labels& labels) : c_(c), labels_(labels) {}

    // One link: "link\tKIND\tNAME\tTYPE\tOBJECT_NAME\n" (protocol.h).
    void link(MappedText& out, uint32_t n) {
        const void* obj = c_.graph.at(n).object;
        const void* type = typeOf(obj);
        Edge e = labels_.edge(n);
        out.append("link\t");
        char text[512];
        if (e == kRoot) {
            appendRoot(out, c_.roots.at(c_.graph.at(n).root));
        } else if (e == kKey) {
            out.append(keyText(n, text, sizeof text));
            out.append('\t');
            out.append(text);
        } else {
            out.append(kindWord(e));
            out.append('\t');
        }
        out.append('\t');
        out.append(c_.typeNames.nameOf(c_, type));
        out.append('\t');
        if ((flagsOf(type) & layouts::kTpFlagsTypeSubclass) != 0) {
            out.append(c_.typeNames.nameOf(c_, obj));
        } else if (type == c_.heap.moduleType && e == kRoot) {
            copyStr(c_.roots.at(c_.graph.at(n).root).name, text, sizeof text);
            out.append(text);
        }
        out.append('\n');
    }

private:
    static const char* kindWord(Edge e) {
        switch (e) {
        case kDict:
            return "dict";
        case kDictKey:
            return "key-of";
        case kItem:
            return "item";
        case kMember:
            return "member";
        case kCell:
            return "cell";
        default:
            return "ref";
        }
    }

    // "module\tNAME", "local\tVAR in FUNC (FILE:LINE) thread N", "gc\tgarbage",
    // or for what no root reaches "cycle\t", "external\t", "unreached\t".
    static void appendRoot(MappedText& out, const HeapRoot& r) {
        char text[256];
        switch (r.kind) {
        case HeapRoot::kGcGarbage:
            out.append("gc\tgarbage");
            return;
        case HeapRoot::kUnreached:
            out.append("unreached\t");
            return;
        case HeapRoot::kCycle:
            out.append("cycle\t");
            return;
        case HeapRoot::kExternal:
            out.append("external\t");
            return;
        case HeapRoot::kModule:
        case HeapRoot::kLocal:
            break;
        }
        if (r.kind == HeapRoot::kModule) {
            copyStr(r.name, text, sizeof text);
            out.append("module\t");
            out.append(text);
            return;
        }
        char file[256];
        char func[128];
        copyCodeNames(r.name, file, sizeof file, func, sizeof func);
        copyStr(localName(r.name, r.local), text, sizeof text);
        out.append("local\t");
        out.append(text);
        out.append(" in ");
        out.append(func);
        out.append(" (");
        out.append(file);
        out.append(':');
        out.appendU64(r.line > 0 ? static_cast<uint64_t>(r.line) : 0);
        out.append(") thread ");
        out.appendU64(r.thread);
    }

    // A dict entry: "attr" when the dict is an object's __dict__ (or the
    // value is an attribute held outside any dict), else "key".
    const char* keyText(uint32_t n, char* text, int cap) {
        const HeapNode& node = c_.graph.at(n);
        const void* parent = c_.graph.at(node.parent).object;
        const void* key = labels_.key(n);
        bool isDict = typeOf(parent) == c_.heap.dictType;
        bool attribute = !isDict || labels_.edge(node.parent) == kDict;
        if (typeOf(key) == c_.heap.unicodeType &&
            (attribute || readAt<int64_t>(parent, layouts::kDictUsed) <= kNamedKeysMax)) {
            copyStr(key, text, cap);
        } else {
            const char* name = c_.typeNames.nameOf(c_, typeOf(key));
            text[0] = '<';
            size_t len = std::strlen(name);
            len = len + 3 < static_cast<size_t>(cap) ? len : static_cast<size_t>(cap) - 3;
            std::memcpy(text + 1, name, len);
            text[len + 1] = '>';
            text[len + 2] = '\0';
        }
        for (char* p = text; *p != '\0'; ++p) {
            *p = *p == '\t' || *p == '\n' ? ' ' : *p;
        }
        return attribute ? "attr" : "key";
    }

    HeapContext& c_;
    Labels& labels_;
};

} // namespace

void
reportChains(HeapContext& c, MappedText& out) noexcept {
    const HeapWalkRequest& request = c.request;
    // The tracebacks at the site.
    size_t traceCap = engineTracebackCount() + 4096;
    Mapping marksMap;
    if (!marksMap.allocate(traceCap)) {
        appendKeyValue(out, "refs_note", "no memory for the site's tracebacks");
        return;
    }
    auto* marks = static_cast<uint8_t*>(marksMap.get());
    int64_t siteRecords = 0;
    int64_t siteBytes = 0;
    size_t tracebacks =
        engineMarkSite(request.file, request.line, marks, traceCap, &siteRecords, &siteBytes);
    appendKeyValue(out, "site_tracebacks", tracebacks);
    appendKeyValue(out, "site_traced_records", siteRecords > 0 ? static_cast<uint64_t>(siteRecords) : 0);
    appendKeyValue(out, "site_traced_bytes", siteBytes > 0 ? static_cast<uint64_t>(siteBytes) : 0);

    // The site's objects among the nodes.
    Mapping targetMap;
    uint32_t targetCap = c.graph.size() < kMaxTargets ? c.graph.size() : kMaxTargets;
    if (tracebacks == 0 || targetCap == 0 || !targetMap.allocate(size_t{targetCap} * sizeof(Target))) {
        appendKeyValue(out, "site_objects", uint64_t{0});
        appendKeyValue(out, "chains_total", uint64_t{0});
        return;
    }
    auto* targets = static_cast<Target*>(targetMap.get());
    uint32_t count = 0;
    uint64_t targetBytes = 0;
    uint64_t finalized = 0;
    for (uint32_t i = 0; i < c.graph.size() && count < targetCap; ++i) {
        const HeapNode& node = c.graph.at(i);
        const void* type = typeOf(node.object);
        uint64_t size = 0;
        uint32_t trace = 0;
        auto atSite = [&](const void* block) {
            return block != nullptr && engineFindBlock(block, &size, &trace) && trace < traceCap &&
                   marks[trace] != 0;
        };
        bool found = atSite(pyobj::blockOf(node.object, type, c.layout));
        if (!found && type == c.heap.dictType) {
            found = atSite(ptrAt(node.object, layouts::kDictKeys));
        } else if (!found && type == c.heap.listType) {
            found = atSite(ptrAt(node.object, layouts::kListItems));
        } else if (!found && type == c.heap.byteArrayType) {
            found = atSite(ptrAt(node.object, layouts::kByteArrayBytes)); // a big buffer, sampled first
        }
        if (found) {
            targets[count++] = Target{i, node.parent, type, size};
            targetBytes += size;
            finalized += gcFinalized(c, node.object) ? 1 : 0;
        }
    }
    appendKeyValue(out, "site_objects", count);
    appendKeyValue(out, "site_object_bytes", targetBytes);
    appendKeyValue(out, "site_finalized", finalized);
    std::sort(targets, targets + count, [](const Target& a, const Target& b) {
        return a.parent != b.parent ? a.parent < b.parent : a.type < b.type;
    });

    Labels labels(c);
    Mapping chainMap;
    if (!labels.init() || !chainMap.allocate(kChainSlots * sizeof(Chain))) {
        appendKeyValue(out, "refs_note", "no memory for the chains");
        return;
    }
    auto* chains = static_cast<Chain*>(chainMap.get());
    ChainWriter writer(c, labels);
    MappedText texts; // every distinct chain's link lines, back to back
    MappedText text;
    uint64_t otherObjects = 0;
    size_t used = 0;
    for (uint32_t g = 0; g < count;) {
        uint32_t end = g;
        uint64_t bytes = 0;
        while (end < count && targets[end].parent == targets[g].parent &&
               targets[end].type == targets[g].type) {
            bytes += targets[end++].bytes;
        }
        // The path from the root down to the group's parent.
        uint32_t up[kMaxLinks];
        uint32_t depth = 0;
        for (uint32_t n = targets[g].parent; n != kNoNode && depth < kMaxLinks;
             n = c.graph.at(n).parent) {
            up[depth++] = n;
        }
        text.clear();
        for (uint32_t k = depth; k-- > 0;) {
            writer.link(text, up[k]);
        }
        writer.link(text, targets[g].node);
        uint64_t h = hashText(text.data(), text.size());
        size_t slot = h % kChainSlots;
        while (chains[slot].hash != 0 && chains[slot].hash != h) {
            slot = (slot + 1) % kChainSlots;
        }
        Chain& chain = chains[slot];
        if (chain.hash == 0 && used * 4 >= kChainSlots * 3) {
            otherObjects += end - g;
            g = end;
            continue;
        }
        if (chain.hash == 0) {
            ++used;
            chain.hash = h;
            chain.textOffset = texts.size();
            chain.textLength = static_cast<uint32_t>(text.size());
            texts.append(text.data(), text.size());
            chain.links = depth + 1;
            chain.pathLength = depth;
            chain.shared = depth;
            for (uint32_t k = 0; k < depth; ++k) {
                chain.path[k] = up[depth - 1 - k];
            }
        } else {
            uint32_t same = 0;
            while (same < chain.shared && same < depth && chain.path[same] == up[depth - 1 - same]) {
                ++same;
            }
            chain.shared = same;
        }
        chain.objects += end - g;
        chain.bytes += bytes;
        g = end;
    }
    // The largest chains first.
    Mapping orderMap;
    if (!orderMap.allocate(kChainSlots * sizeof(uint32_t))) {
        appendKeyValue(out, "refs_note", "no memory for the chains");
        return;
    }
    auto* order = static_cast<uint32_t*>(orderMap.get());
    uint32_t n = 0;
    for (size_t i = 0; i < kChainSlots; ++i) {
        if (chains[i].hash != 0) {
            order[n++] = static_cast<uint32_t>(i);
        }
    }
    std::sort(order, order + n, [&](uint32_t a, uint32_t b) {
        return chains[a].objects != chains[b].objects ? chains[a].objects > chains[b].objects
                                                      : chains[a].bytes > chains[b].bytes;
    });
    appendKeyValue(out, "chains_total", n);
    appendKeyValue(out, "chains_other_objects", otherObjects);
    for (uint32_t i = 0; i < n && i < request.topChains; ++i) {
        const Chain& chain = chains[order[i]];
        out.append("chain\t");
        out.appendU64(chain.objects);
        out.append('\t');
        out.appendU64(chain.bytes);
        out.append('\t');
        out.appendU64(chain.links);
        out.append('\t');
        out.appendU64(chain.shared);
        out.append('\n');
        out.append(texts.data() + chain.textOffset, chain.textLength);
    }
}

} // namespace memtap_agent
