// atomic_file.h: whole-file reads and crash-safe whole-file writes.
//
// A checkpoint written while the machine dies must never be half a file under
// the real name. write_file_atomic() writes "<path>.tmp.<pid>", fsyncs it and
// renames it over <path>: rename() within one directory is atomic on POSIX, so
// a reader sees either the old file or the complete new one, never a mix. On
// any failure the temporary file is removed and the old file is left as it was.
// The temporary name is per process, so two threads of one process must not
// write the same path at once (nothing here does).
//
//   write_file_atomic("run/config.json", text);
//   std::string bytes = read_file("run/model.safetensors");
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace ittt {

// A borrowed range of bytes: lets a writer send a header and many tensors to
// one file without first concatenating them into one big buffer.
struct ByteSpan {
    const void* data = nullptr;
    size_t size = 0;
};

void write_file_atomic(const std::string& path, const std::vector<ByteSpan>& pieces);
void write_file_atomic(const std::string& path, const std::string& bytes);

// The whole file; an Error naming the path and the reason when it is missing,
// a directory or unreadable.
std::string read_file(const std::string& path);

// mkdir -p: creates every missing directory on the way; fine when it exists.
// Errors name the component that could not be created and why.
void make_directories(const std::string& path);

bool path_exists(const std::string& path);
bool is_directory(const std::string& path);
bool is_regular_file(const std::string& path);
// Removes a file if present; an Error if it exists and cannot be removed.
void remove_file_if_exists(const std::string& path);
// "dir" + "/" + "name" without doubling a trailing slash.
std::string join_path(const std::string& dir, const std::string& name);

}  // namespace ittt
