#include "io/writer_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <thread>

#include "io/atomic_file.h"
#include "runtime/error.h"

namespace ittt {

namespace {

std::string utc_now() {
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
    return buf;
}

// What the holder wrote into the lock file: its "pid N, who, since T" line.
// The holder writes it just after taking the lock, so a reader that comes in
// between finds the file empty: it waits a little for the line.
std::string holder_of(int fd) {
    for (int attempt = 0; attempt < 20; ++attempt) {
        char buf[512];
        ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
        if (n > 0) {
            std::string line(buf, static_cast<size_t>(n));
            while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
            if (line.find('\n') == std::string::npos && !line.empty()) return line;
            return excerpt(line, 200);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return "a process that has not written its id into the lock file";
}

}  // namespace

std::string checkpoint_lock_path(const std::string& checkpoint_dir) {
    return join_path(parent_directory(checkpoint_dir), cat(".", base_name(checkpoint_dir), ".writer.lock"));
}

std::string run_lock_path(const std::string& run_dir) { return join_path(run_dir, ".writer.lock"); }

WriterLock::WriterLock(std::string lock_path, const std::string& what, const std::string& who) : path_(std::move(lock_path)) {
    // The holder removes the file when it ends. A process that opened the old
    // file just before that would lock a file no longer in the directory, so
    // after locking check that the name still leads to the file we hold.
    for (int attempt = 0;; ++attempt) {
        int fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0) fail(cat("cannot lock ", what, " for writing: cannot open the lock file '", path_, "': ", std::strerror(errno)));
        if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
            const int e = errno;
            if (e == EWOULDBLOCK) {
                const std::string holder = holder_of(fd);
                ::close(fd);
                fail(cat(what, " is being written by another process (", holder, "; lock file '", path_,
                         "'): one writer at a time; wait for it to end, or write elsewhere"));
            }
            ::close(fd);
            fail(cat("cannot lock ", what, " for writing: flock of '", path_, "' failed: ", std::strerror(e)));
        }
        struct stat held {}, named {};
        if (::fstat(fd, &held) == 0 && ::stat(path_.c_str(), &named) == 0 && held.st_dev == named.st_dev && held.st_ino == named.st_ino) {
            fd_ = fd;
            break;
        }
        ::close(fd);  // removed (or replaced) by its last holder: take the new one
        ITTT_CHECK(attempt < 100, "cannot lock ", what, " for writing: the lock file '", path_, "' keeps being replaced");
    }
    const std::string line = cat("pid ", ::getpid(), ", ", who, ", since ", utc_now(), "\n");
    // The line is information for a refused writer, not the lock: a failure to write it is not fatal.
    if (::ftruncate(fd_, 0) == 0) {
        ssize_t n = ::pwrite(fd_, line.data(), line.size(), 0);
        (void)n;
    }
}

WriterLock::~WriterLock() {
    if (fd_ < 0) return;
    ::unlink(path_.c_str());  // before the unlock: a waiting writer then sees the name gone and retries
    ::close(fd_);             // drops the lock
}

}  // namespace ittt
