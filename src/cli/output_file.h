// A report written to a file (`diff --format html -o FILE`): the file appears
// whole or not at all. The temporary next to it is made before any work, so a
// path that cannot be written fails fast, and it is removed on every path
// that does not commit.
#pragma once

#include <string>
#include <string_view>

#include "base/unique_fd.h"

namespace memtap::cli {

class OutputFile {
public:
    // Error(Failure) naming the path and errno when the directory cannot
    // take a new file.
    static OutputFile createOrThrow(const std::string& path);

    OutputFile(OutputFile&& other) noexcept;
    OutputFile& operator=(OutputFile&&) = delete;
    OutputFile(const OutputFile&) = delete;
    ~OutputFile();

    // Writes data, flushes it to disk and renames the temporary onto the
    // path. Error(Failure) on any failure (ENOSPC, EIO...), temporary removed.
    void commitOrThrow(std::string_view data);
    const std::string& path() const { return path_; }

private:
    OutputFile(std::string path, std::string temp, UniqueFd fd)
        : path_(std::move(path)), temp_(std::move(temp)), fd_(std::move(fd)) {}
    std::string path_;
    std::string temp_; // empty once committed or moved from
    UniqueFd fd_;
};

} // namespace memtap::cli
