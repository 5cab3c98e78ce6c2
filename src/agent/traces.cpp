#include "agent/traces.h"

#include <cstring>

namespace memtap_agent {
namespace {

// Name buffers on the hook's stack: paths longer than this are truncated by
// copyCodeNames on a character boundary.
constexpr int kFileCap = 1024;
constexpr int kFuncCap = 256;
constexpr size_t kInitialIndex = 4096;

uint64_t
hashBytes(const void* data, size_t n, uint64_t seed) {
    // FNV-1a then a final mix: names are short and hashed once per new frame.
    const auto* p = static_cast<const unsigned char*>(data);
    uint64_t h = seed ^ 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; ++i) {
        h = (h ^ p[i]) * 0x100000001b3ULL;
    }
    return mix64(h);
}

// A traceback's hash, word by word: this runs on every traced allocation
// (exact mode: every allocation), where the byte loop above cost 12 rounds
// per frame.
uint64_t
hashFrames(const Frame* frames, int count, uint64_t seed) {
    uint64_t h = mix64(seed ^ 0x9e3779b97f4a7c15ULL);
    for (int i = 0; i < count; ++i) {
        uint64_t names = frames[i].file | uint64_t{frames[i].func} << 32;
        h = (h ^ names) * 0xbf58476d1ce4e5b9ULL;
        h = (h ^ static_cast<uint32_t>(frames[i].line)) * 0x94d049bb133111ebULL;
        h ^= h >> 29;
    }
    return mix64(h);
}

} // namespace

bool
Traces::init() noexcept {
    reset();
    if (!stringIndex_.init(kInitialIndex) || !tracebackIndex_.init(kInitialIndex) ||
        !codeMap_.allocate(kInitialIndex * sizeof(CodeEntry))) {
        reset();
        return false;
    }
    codes_ = static_cast<CodeEntry*>(codeMap_.get());
    codeMask_ = kInitialIndex - 1;
    // Id 0: the empty traceback, for allocations made without the GIL (raw
    // domain), with frame capture unavailable, or when a table is full.
    Traceback* empty = tracebacks_.append();
    if (empty == nullptr) {
        reset();
        return false;
    }
    *empty = Traceback{hashFrames(nullptr, 0, 0), 0, 0, nullptr, 0, 0, 0, 0, 0, 0, 0};
    uint64_t emptyHash = empty->hash;
    tracebackIndex_.insert(emptyHash, 0, [&](uint32_t) { return emptyHash; });
    return true;
}

void
Traces::reset() noexcept {
    pool_.reset();
    strings_.reset();
    stringIndex_.reset();
    tracebacks_.reset();
    tracebackIndex_.reset();
    codeMap_.reset();
    codes_ = nullptr;
    codeMask_ = 0;
    codeCount_ = 0;
}

uint32_t
Traces::internString(const char* text) noexcept {
    size_t length = std::strlen(text);
    uint64_t hash = hashBytes(text, length, 1);
    uint32_t id = stringIndex_.find(hash, [&](uint32_t i) {
        const InternedString& s = strings_.at(i);
        return s.hash == hash && s.length == length && std::memcmp(s.text, text, length) == 0;
    });
    if (id != UINT32_MAX) {
        return id;
    }
    char* copy = static_cast<char*>(pool_.allocate(length + 1));
    InternedString* entry = copy != nullptr ? strings_.append() : nullptr;
    if (entry == nullptr) {
        return UINT32_MAX;
    }
    std::memcpy(copy, text, length + 1);
    *entry = InternedString{copy, static_cast<uint32_t>(length), hash};
    id = static_cast<uint32_t>(strings_.size() - 1);
    if (!stringIndex_.insert(hash, id, [&](uint32_t i) { return strings_.at(i).hash; })) {
        return UINT32_MAX;
    }
    return id;
}

bool
Traces::growCodeCache() noexcept {
    size_t capacity = (codeMask_ + 1) * 2;
    Mapping bigger;
    if (!bigger.allocate(capacity * sizeof(CodeEntry))) {
        return false;
    }
    auto* fresh = static_cast<CodeEntry*>(bigger.get());
    for (size_t i = 0; i <= codeMask_; ++i) {
        if (codes_[i].code != nullptr) {
            size_t j = mix64(reinterpret_cast<uintptr_t>(codes_[i].code)) & (capacity - 1);
            while (fresh[j].code != nullptr) {
                j = (j + 1) & (capacity - 1);
            }
            fresh[j] = codes_[i];
        }
    }
    codeMap_ = static_cast<Mapping&&>(bigger);
    codes_ = fresh;
    codeMask_ = capacity - 1;
    return true;
}

bool
Traces::resolveCode(const void* code, uint32_t* file, uint32_t* func) noexcept {
    CodeIdentity identity{};
    if (!codeIdentity(code, &identity)) {
        return false;
    }
    size_t i = mix64(reinterpret_cast<uintptr_t>(code)) & codeMask_;
    while (codes_[i].code != nullptr && codes_[i].code != code) {
        i = (i + 1) & codeMask_;
    }
    CodeEntry& e = codes_[i];
    if (e.code == code && e.filename == identity.filename && e.name == identity.name &&
        e.firstLine == identity.firstLine) {
        *file = e.file;
        *func = e.func;
        return true;
    }
    // A miss, or the address now holds another code object: copy its names.
    char fileName[kFileCap];
    char funcName[kFuncCap];
    copyCodeNames(code, fileName, kFileCap, funcName, kFuncCap); // "?" on failure
    uint32_t fileId = internString(fileName);
    uint32_t funcId = internString(funcName);
    if (fileId == UINT32_MAX || funcId == UINT32_MAX) {
        return false;
    }
    bool fresh = e.code == nullptr;
    e = CodeEntry{code, identity.filename, identity.name, identity.firstLine, fileId, funcId};
    if (fresh && (++codeCount_ + 1) * 2 > codeMask_ + 1) {
        growCodeCache(); // on failure the cache just stays fuller
    }
    *file = fileId;
    *func = funcId;
    return true;
}

uint32_t
Traces::intern(const RawFrame* raw, int n, uint32_t tid, uint32_t domain) noexcept {
    Frame frames[MEMTAP_MAX_FRAMES];
    int count = 0;
    for (int i = 0; i < n && i < static_cast<int>(MEMTAP_MAX_FRAMES); ++i) {
        if (!resolveCode(raw[i].code, &frames[count].file, &frames[count].func)) {
            break;
        }
        frames[count].line = raw[i].line;
        ++count;
    }
    size_t bytes = sizeof(Frame) * static_cast<size_t>(count);
    // Thread and domain are the seed: tid 0 in domain 0 with no frames
    // hashes as id 0 did.
    uint64_t hash = hashFrames(frames, count, tid | uint64_t{domain} << 32);
    uint32_t id = tracebackIndex_.find(hash, [&](uint32_t i) {
        const Traceback& t = tracebacks_.at(i);
        if (t.hash != hash || t.tid != tid || t.domain != domain ||
            t.nframes != static_cast<uint32_t>(count)) {
            return false;
        }
        for (int k = 0; k < count; ++k) { // a loop, not memcmp: most have 1-16 frames
            if (t.frames[k].file != frames[k].file || t.frames[k].func != frames[k].func ||
                t.frames[k].line != frames[k].line) {
                return false;
            }
        }
        return true;
    });
    if (id != UINT32_MAX) {
        return id;
    }
    if (tracebacks_.size() > AddressTable::kMaxTrace) {
        return 0;
    }
    Frame* copy = count > 0 ? static_cast<Frame*>(pool_.allocate(bytes)) : nullptr;
    Traceback* t = (count == 0 || copy != nullptr) ? tracebacks_.append() : nullptr;
    if (t == nullptr) {
        return 0;
    }
    if (count > 0) {
        std::memcpy(copy, frames, bytes);
    }
    *t = Traceback{hash, 0, 0, copy, static_cast<uint32_t>(count), tid, domain, 0, 0, 0, 0};
    id = static_cast<uint32_t>(tracebacks_.size() - 1);
    tracebackIndex_.insert(hash, id, [&](uint32_t i) { return tracebacks_.at(i).hash; });
    return id;
}

} // namespace memtap_agent
