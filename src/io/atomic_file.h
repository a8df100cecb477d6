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
// A single file is not a checkpoint: io/checkpoint.h builds whole directories
// in private staging directories with the calls below and publishes them with
// one rename. Every call that changes the disk passes a fault-injection point
// first (io/fault_injection.h), so tests can fail or kill any one of them.
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

// mkdir of one directory that must not exist yet (a staging directory).
void make_directory(const std::string& path);
// fsync of a directory, so the names created or renamed in it survive a power
// cut. Errors other than "not supported by this file system" throw.
void sync_directory(const std::string& dir);
// rename(2): atomic within one file system; an Error naming both paths.
void rename_path(const std::string& from, const std::string& to);
// Swaps two existing paths in one atomic step (renameat2 RENAME_EXCHANGE).
// Returns false, changing nothing, where the file system cannot do it.
bool exchange_paths(const std::string& a, const std::string& b);
// rm -rf; "" when it is gone (or was never there), else why not.
std::string remove_tree(const std::string& path);
// The names in a directory (no "." or ".."), sorted; an Error if unreadable.
std::vector<std::string> list_directory(const std::string& dir);
// The directory part of a path ("a/b" -> "a", "b" -> ".", "/b" -> "/").
std::string parent_directory(const std::string& path);
// The last component, ignoring trailing slashes ("a/b/" -> "b").
std::string base_name(const std::string& path);

bool path_exists(const std::string& path);
// What is at `path`, for messages that must name the real problem: "a regular
// file", "a directory", "a FIFO", "a socket", "a character device", "a block
// device", "a symbolic link to 'T', which does not exist" or "nothing".
std::string path_kind(const std::string& path);
bool is_directory(const std::string& path);
bool is_regular_file(const std::string& path);
// Removes a file if present; an Error if it exists and cannot be removed.
void remove_file_if_exists(const std::string& path);
// "dir" + "/" + "name" without doubling a trailing slash.
std::string join_path(const std::string& dir, const std::string& name);

}  // namespace ittt
