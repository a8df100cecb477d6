// writer_lock.h: one writer per run directory (or per checkpoint being written).
//
// Two `ittt train --out run` at once would each publish whole checkpoints, and
// each prune the other's: both exit 0, and only one run's result survives. So
// every writer first takes an advisory lock, flock(2) LOCK_EX on a lock file,
// and holds it until it ends:
//
//   ittt train --out run         run/.writer.lock
//   ittt convert IN OUT          <parent of OUT>/.<name of OUT>.writer.lock   (OUT is replaced whole,
//   ittt init --out DIR          <parent of DIR>/.<name of DIR>.writer.lock    so the lock sits beside it)
//
// A second writer is refused at once, naming the holder's process id and the
// time it took the lock (the holder writes both into the lock file). A lock is
// never stale: the kernel drops a flock lock when its holder exits, however it
// exits (kill -9 included), so a lock file left by a killed process is simply
// taken again. The holder removes the lock file when it ends normally.
//
//   WriterLock lock(join_path(out, ".writer.lock"), "--out " + out, "ittt train");
//   ...   // the run; the destructor releases the lock and removes the file
//
// Readers (eval, forward, --ckpt) take no lock: checkpoints are published
// atomically (io/checkpoint.h), so a reader never sees half of one.
#pragma once
#include <string>

namespace ittt {

class WriterLock {
public:
    // Takes the lock or throws an Error: "<what> is being written by another
    // process (pid 123, ittt train, since 2026-12-01 10:00:00 UTC; lock file
    // <path>): one writer at a time; ..." `who` goes into the lock file.
    WriterLock(std::string lock_path, const std::string& what, const std::string& who);
    ~WriterLock();
    WriterLock(const WriterLock&) = delete;
    WriterLock& operator=(const WriterLock&) = delete;

    const std::string& path() const { return path_; }

private:
    std::string path_;
    int fd_ = -1;
};

// The lock file of a checkpoint directory written whole (convert's OUT, init's
// --out): "<parent>/.<name>.writer.lock".
std::string checkpoint_lock_path(const std::string& checkpoint_dir);
// The lock file of a run directory: "<run>/.writer.lock".
std::string run_lock_path(const std::string& run_dir);

}  // namespace ittt
