// A growable text buffer for replies, used on the agent thread only.
//
// The agent thread may use libc malloc: it is not the hooked path (the hooks
// wrap CPython's PyMem domains, not glibc). Failure is sticky and checked once.
#ifndef MEMTAP_AGENT_TEXT_H
#define MEMTAP_AGENT_TEXT_H

#include "agent/mapping.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace memtap_agent {

class Text {
public:
    Text() = default;
    Text(const Text&) = delete;
    Text& operator=(const Text&) = delete;
    ~Text() { std::free(data_); }

    // Frees the buffer and starts over, failure included.
    void reset() noexcept {
        std::free(data_);
        data_ = nullptr;
        size_ = 0;
        capacity_ = 0;
        failed_ = false;
    }

    void append(const char* s, size_t n) noexcept {
        if (!reserve(size_ + n)) {
            return;
        }
        std::memcpy(data_ + size_, s, n);
        size_ += n;
    }
    void append(const char* s) noexcept { append(s, std::strlen(s)); }
    void append(char c) noexcept { append(&c, 1); }
    void appendU64(uint64_t v) noexcept {
        char digits[24];
        int n = 0;
        do {
            digits[n++] = static_cast<char>('0' + v % 10);
            v /= 10;
        } while (v != 0);
        char out[24];
        for (int i = 0; i < n; ++i) {
            out[i] = digits[n - 1 - i];
        }
        append(out, static_cast<size_t>(n));
    }
    void appendI64(int64_t v) noexcept {
        if (v < 0) {
            append('-');
            appendU64(static_cast<uint64_t>(0) - static_cast<uint64_t>(v));
        } else {
            appendU64(static_cast<uint64_t>(v));
        }
    }
    bool reserve(size_t want) noexcept {
        if (failed_) {
            return false;
        }
        if (want <= capacity_) {
            return true;
        }
        size_t cap = capacity_ == 0 ? 4096 : capacity_;
        while (cap < want) {
            cap *= 2;
        }
        char* grown = static_cast<char*>(std::realloc(data_, cap));
        if (grown == nullptr) {
            failed_ = true;
            return false;
        }
        data_ = grown;
        capacity_ = cap;
        return true;
    }

    const char* data() const noexcept { return data_ != nullptr ? data_ : ""; }
    size_t size() const noexcept { return size_; }
    bool failed() const noexcept { return failed_; }

private:
    char* data_ = nullptr;
    size_t size_ = 0;
    size_t capacity_ = 0;
    bool failed_ = false;
};

// The same interface over memory the agent maps itself, for text written
// inside an allocator hook (the heap walk), where malloc must not be called.
class MappedText {
public:
    constexpr MappedText() = default;
    MappedText(const MappedText&) = delete;
    MappedText& operator=(const MappedText&) = delete;
    MappedText(MappedText&& other) noexcept { swap(other); }
    MappedText& operator=(MappedText&& other) noexcept {
        MappedText moved(static_cast<MappedText&&>(other));
        swap(moved);
        return *this;
    }
    ~MappedText() { reset(); }

    void reset() noexcept {
        if (data_ != nullptr) {
            unmap(data_, capacity_);
        }
        data_ = nullptr;
        size_ = capacity_ = 0;
        failed_ = false;
    }
    // Empties the text, keeping its memory.
    void clear() noexcept {
        size_ = 0;
        failed_ = false;
    }
    void append(const char* s, size_t n) noexcept {
        if (failed_ || (size_ + n > capacity_ && !grow(size_ + n))) {
            failed_ = true;
            return;
        }
        std::memcpy(data_ + size_, s, n);
        size_ += n;
    }
    void append(const char* s) noexcept { append(s, std::strlen(s)); }
    void append(char c) noexcept { append(&c, 1); }
    void appendU64(uint64_t v) noexcept {
        char out[24];
        int n = 24;
        do {
            out[--n] = static_cast<char>('0' + v % 10);
            v /= 10;
        } while (v != 0);
        append(out + n, static_cast<size_t>(24 - n));
    }
    void appendI64(int64_t v) noexcept {
        if (v < 0) {
            append('-');
            appendU64(static_cast<uint64_t>(0) - static_cast<uint64_t>(v));
        } else {
            appendU64(static_cast<uint64_t>(v));
        }
    }
    const char* data() const noexcept { return data_ != nullptr ? data_ : ""; }
    size_t size() const noexcept { return size_; }
    bool failed() const noexcept { return failed_; }

private:
    bool grow(size_t want) noexcept {
        size_t cap = capacity_ == 0 ? 65536 : capacity_;
        while (cap < want) {
            cap *= 2;
        }
        char* grown = static_cast<char*>(mapZeroed(cap));
        if (grown == nullptr) {
            return false;
        }
        if (data_ != nullptr) {
            std::memcpy(grown, data_, size_);
            unmap(data_, capacity_);
        }
        data_ = grown;
        capacity_ = cap;
        return true;
    }
    void swap(MappedText& other) noexcept {
        char* d = data_;
        size_t s = size_, c = capacity_;
        bool f = failed_;
        data_ = other.data_, size_ = other.size_, capacity_ = other.capacity_, failed_ = other.failed_;
        other.data_ = d, other.size_ = s, other.capacity_ = c, other.failed_ = f;
    }

    char* data_ = nullptr;
    size_t size_ = 0;
    size_t capacity_ = 0;
    bool failed_ = false;
};

// One "KEY VALUE\n" line of a reply (protocol.h).
template <typename Out>
inline void
appendKeyValue(Out& out, const char* key, const char* value) noexcept {
    out.append(key);
    out.append(' ');
    out.append(value);
    out.append('\n');
}

template <typename Out>
inline void
appendKeyValue(Out& out, const char* key, uint64_t value) noexcept {
    out.append(key);
    out.append(' ');
    out.appendU64(value);
    out.append('\n');
}

} // namespace memtap_agent

#endif // MEMTAP_AGENT_TEXT_H
