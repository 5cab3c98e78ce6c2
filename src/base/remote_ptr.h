// An address in the target process. Never dereferenced here: it is a number
// that only means something inside another address space, so it gets a type
// of its own and cannot be mixed up with a host pointer (rr's remote_ptr).
#pragma once

#include <compare>
#include <cstdint>
#include <functional>

#include <fmt/format.h>

namespace memtap {

class RemotePtr {
public:
    constexpr RemotePtr() = default;
    constexpr explicit RemotePtr(uint64_t address) : address_(address) {}

    constexpr uint64_t value() const { return address_; }
    constexpr bool isNull() const { return address_ == 0; }
    constexpr explicit operator bool() const { return address_ != 0; }

    constexpr RemotePtr operator+(uint64_t offset) const { return RemotePtr(address_ + offset); }
    constexpr RemotePtr operator-(uint64_t offset) const { return RemotePtr(address_ - offset); }
    constexpr uint64_t operator-(RemotePtr other) const { return address_ - other.address_; }
    constexpr auto operator<=>(const RemotePtr&) const = default;

private:
    uint64_t address_ = 0;
};

} // namespace memtap

template <> struct std::hash<memtap::RemotePtr> {
    size_t operator()(memtap::RemotePtr p) const noexcept { return std::hash<uint64_t>{}(p.value()); }
};

template <> struct fmt::formatter<memtap::RemotePtr> : fmt::formatter<std::string_view> {
    template <typename Context> auto format(memtap::RemotePtr p, Context& ctx) const {
        return fmt::format_to(ctx.out(), "{:#x}", p.value());
    }
};
