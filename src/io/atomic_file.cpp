#include "io/atomic_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "io/fault_injection.h"
#include "runtime/error.h"

namespace ittt {

namespace {

std::string errno_text(int e) { return std::strerror(e); }

// Runs a system call behind a fault-injection point: an injected errno makes
// it fail as the real call would (returning -1 with errno set) without running it.
template <class Call>
auto guarded(fault::Op op, const std::string& path, Call call) -> decltype(call()) {
    if (int e = fault::before(op, path)) {
        errno = e;
        return -1;
    }
    return call();
}

// Closes the descriptor and removes the temporary file unless release() was
// called: every early return or throw below leaves nothing behind.
struct TempFile {
    std::string path;
    int fd = -1;
    bool keep = false;
    ~TempFile() {
        if (fd >= 0) ::close(fd);
        if (!keep) ::unlink(path.c_str());
    }
};

void write_all(int fd, const void* data, size_t size, const std::string& path) {
    const char* p = static_cast<const char*>(data);
    while (size > 0) {
        ssize_t n = guarded(fault::Op::Write, path, [&] { return ::write(fd, p, size); });
        if (n < 0) {
            if (errno == EINTR) continue;
            fail(cat("cannot write '", path, "': ", errno_text(errno)));
        }
        p += n;
        size -= static_cast<size_t>(n);
    }
}

}  // namespace

// The rename itself lives in the directory: without this a power cut after
// rename() can still bring back the old name. Some file systems refuse fsync on
// a directory (EINVAL); there is nothing more to do on those.
void sync_directory(const std::string& dir) {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) fail(cat("cannot sync directory '", dir, "': ", errno_text(errno)));
    int rc = guarded(fault::Op::Fsync, dir, [&] { return ::fsync(fd); });
    int e = errno;
    ::close(fd);
    if (rc != 0 && e != EINVAL && e != ENOTSUP) fail(cat("cannot sync directory '", dir, "': fsync failed: ", errno_text(e)));
}

void write_file_atomic(const std::string& path, const std::vector<ByteSpan>& pieces) {
    ITTT_CHECK(!path.empty(), "write_file_atomic: empty path");
    ITTT_CHECK(!is_directory(path), "cannot write '", path, "': it is a directory");
    TempFile tmp;
    tmp.path = cat(path, ".tmp.", ::getpid());
    tmp.fd = guarded(fault::Op::Create, tmp.path,
                     [&] { return ::open(tmp.path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644); });
    if (tmp.fd < 0) {
        int e = errno;
        tmp.keep = true;  // never created: nothing of ours to remove
        fail(cat("cannot write '", path, "': cannot create '", tmp.path, "': ", errno_text(e)));
    }
    for (const ByteSpan& piece : pieces) write_all(tmp.fd, piece.data, piece.size, tmp.path);
    if (guarded(fault::Op::Fsync, tmp.path, [&] { return ::fsync(tmp.fd); }) != 0) fail(cat("cannot write '", path, "': fsync of '", tmp.path, "' failed: ", errno_text(errno)));
    int fd = tmp.fd;
    tmp.fd = -1;
    if (::close(fd) != 0) fail(cat("cannot write '", path, "': close of '", tmp.path, "' failed: ", errno_text(errno)));
    if (guarded(fault::Op::Rename, path, [&] { return ::rename(tmp.path.c_str(), path.c_str()); }) != 0)
        fail(cat("cannot write '", path, "': rename from '", tmp.path, "' failed: ", errno_text(errno)));
    tmp.keep = true;  // it is now `path`
    sync_directory(parent_directory(path));
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
    write_file_atomic(path, std::vector<ByteSpan>{{bytes.data(), bytes.size()}});
}

std::string read_file(const std::string& path) {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer
    // forever; it is refused below (regular files ignore the flag).
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) fail(cat("cannot read '", path, "': ", errno_text(errno)));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        int e = errno;
        ::close(fd);
        fail(cat("cannot read '", path, "': ", errno_text(e)));
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        fail(cat("cannot read '", path, "': it is ", path_kind(path), ", not a regular file"));
    }
    std::string bytes;
    bytes.resize(static_cast<size_t>(st.st_size));
    size_t done = 0;
    while (done < bytes.size()) {
        ssize_t n = ::read(fd, &bytes[done], bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int e = errno;
            ::close(fd);
            fail(cat("cannot read '", path, "': ", errno_text(e)));
        }
        if (n == 0) break;  // shrank while we read: keep what is there
        done += static_cast<size_t>(n);
    }
    ::close(fd);
    bytes.resize(done);
    return bytes;
}

void make_directories(const std::string& path) {
    ITTT_CHECK(!path.empty(), "make_directories: empty path");
    // Walk every prefix ending before a '/', then the whole path.
    for (size_t pos = 1; pos <= path.size(); ++pos) {
        if (pos < path.size() && path[pos] != '/') continue;
        std::string prefix = path.substr(0, pos);
        if (prefix.back() == '/') continue;  // "a//b"
        if (guarded(fault::Op::Mkdir, prefix, [&] { return ::mkdir(prefix.c_str(), 0755); }) == 0) continue;
        int e = errno;
        if (e == EEXIST) {
            if (is_directory(prefix)) continue;
            const std::string kind = path_kind(prefix);
            if (kind.rfind("a symbolic link", 0) == 0) fail(cat("cannot create directory '", path, "': '", prefix, "' is ", kind));
            fail(cat("cannot create directory '", path, "': '", prefix, "' exists and is not a directory (it is ", kind, ")"));
        }
        fail(cat("cannot create directory '", path, "': mkdir '", prefix, "' failed: ", errno_text(e)));
    }
}

bool path_exists(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0;
}

std::string path_kind(const std::string& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) return "nothing";
    if (S_ISLNK(st.st_mode)) {
        struct stat target {};
        if (::stat(path.c_str(), &target) != 0) {
            char buf[4096];
            ssize_t n = ::readlink(path.c_str(), buf, sizeof buf);
            return cat("a symbolic link to '", n > 0 ? excerpt(std::string(buf, static_cast<size_t>(n))) : std::string("?"),
                       "', which does not exist");
        }
        st = target;
    }
    if (S_ISREG(st.st_mode)) return "a regular file";
    if (S_ISDIR(st.st_mode)) return "a directory";
    if (S_ISFIFO(st.st_mode)) return "a FIFO";
    if (S_ISSOCK(st.st_mode)) return "a socket";
    if (S_ISCHR(st.st_mode)) return "a character device";
    if (S_ISBLK(st.st_mode)) return "a block device";
    return "not a regular file";
}

bool is_directory(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool is_regular_file(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

void remove_file_if_exists(const std::string& path) {
    if (guarded(fault::Op::Remove, path, [&] { return ::unlink(path.c_str()); }) == 0 || errno == ENOENT) return;
    fail(cat("cannot remove '", path, "': ", errno_text(errno)));
}

void make_directory(const std::string& path) {
    if (guarded(fault::Op::Mkdir, path, [&] { return ::mkdir(path.c_str(), 0755); }) != 0)
        fail(cat("cannot create directory '", path, "': ", errno_text(errno)));
}

void rename_path(const std::string& from, const std::string& to) {
    if (guarded(fault::Op::Rename, to, [&] { return ::rename(from.c_str(), to.c_str()); }) != 0)
        fail(cat("cannot rename '", from, "' to '", to, "': ", errno_text(errno)));
}

bool exchange_paths(const std::string& a, const std::string& b) {
#if defined(SYS_renameat2)
    constexpr unsigned kRenameExchange = 2;  // RENAME_EXCHANGE in <linux/fs.h>
    long rc = guarded(fault::Op::Rename, b, [&] {
        return ::syscall(SYS_renameat2, AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), kRenameExchange);
    });
    if (rc == 0) return true;
    if (errno == EINVAL || errno == ENOSYS || errno == ENOTSUP) return false;  // this file system cannot swap
    fail(cat("cannot exchange '", a, "' and '", b, "': ", errno_text(errno)));
#else
    (void)a, (void)b;
    return false;
#endif
}

std::string remove_tree(const std::string& path) {
    if (int e = fault::before(fault::Op::Remove, path)) return errno_text(e);
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
    return ec ? ec.message() : std::string();
}

std::vector<std::string> list_directory(const std::string& dir) {
    DIR* d = ::opendir(dir.c_str());
    if (!d) fail(cat("cannot list directory '", dir, "': ", errno_text(errno)));
    std::vector<std::string> names;
    while (struct dirent* e = ::readdir(d)) {
        std::string name = e->d_name;
        if (name != "." && name != "..") names.push_back(name);
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    return names;
}

std::string parent_directory(const std::string& path) {
    std::string p = path;
    while (p.size() > 1 && p.back() == '/') p.pop_back();
    size_t slash = p.find_last_of('/');
    if (slash == std::string::npos) return ".";
    if (slash == 0) return "/";
    return p.substr(0, slash);
}

std::string base_name(const std::string& path) {
    std::string p = path;
    while (p.size() > 1 && p.back() == '/') p.pop_back();
    size_t slash = p.find_last_of('/');
    return slash == std::string::npos ? p : p.substr(slash + 1);
}

std::string join_path(const std::string& dir, const std::string& name) {
    if (dir.empty()) return name;
    if (dir.back() == '/') return dir + name;
    return dir + "/" + name;
}

}  // namespace ittt
