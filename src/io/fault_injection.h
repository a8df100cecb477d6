// fault_injection.h: a seam that makes the Nth filesystem mutation fail or
// kill the process, so crash safety is tested at every write point, not hoped for.
//
// Every call in io/atomic_file.cpp that changes the disk (mkdir, create, write,
// fsync, rename, remove) first asks fault::before(op, path). Normally that
// counts the point and returns 0. With a plan armed it may instead
//   - return an errno (ENOSPC, EIO, EROFS, EACCES): the caller fails exactly as
//     if the system call had returned it, or
//   - SIGKILL the process on the spot (the same as `kill -9` at that instant).
//
// The plan comes from the environment variable ITTT_FAULT, read once at the
// first point, or from set_plan() in tests:
//
//   ITTT_FAULT=write:3:enospc     the 3rd write() fails with ENOSPC
//   ITTT_FAULT=fsync:1:eio        the 1st fsync fails with EIO
//   ITTT_FAULT=any:17:kill        SIGKILL at the 17th point of any kind
//   ITTT_FAULT=any:17:term        SIGTERM to itself at the 17th point, which then goes ahead
//                                 (`int`: SIGINT): a signal delivered at an exact moment of a save
//   ITTT_FAULT=trace              print every point to stderr ("ittt fault point 5: fsync <path>")
//   ITTT_FAULT=trace,any:9:kill   both
//
// Kinds: any, mkdir, create, write, fsync, rename, remove. Points are counted
// per kind and in total from the start of the process (or the last set_plan).
// A malformed ITTT_FAULT is an Error naming the variable, never ignored.
#pragma once
#include <cstdint>
#include <string>

namespace ittt::fault {

enum class Op { Mkdir, Create, Write, Fsync, Rename, Remove };
const char* op_name(Op op);

enum class Effect { None, Errno, Kill, Signal };

struct Plan {
    bool trace = false;
    bool any = true;          // count every kind (else only `op`)
    Op op = Op::Write;
    int64_t n = 0;            // the 1-based point that fails; 0 = none
    Effect effect = Effect::None;
    int error = 0;            // errno for Effect::Errno
    int signal = 0;           // the signal raised for Effect::Signal
};

// "write:3:enospc" -> Plan; an Error naming `source` when malformed.
Plan parse_plan(const std::string& spec, const std::string& source);

// Replaces the plan (and ITTT_FAULT) and resets the counters. Tests only.
void set_plan(const Plan& plan);
void clear();

// Reads ITTT_FAULT now (main calls it first), so a malformed plan is reported
// as itself rather than inside the first operation that reaches a point.
void load_environment();

// Called before each mutation: 0 to go ahead, or the errno to fail with.
int before(Op op, const std::string& path);

// Points seen since the start (or the last set_plan / clear), all kinds.
int64_t points_seen();

}  // namespace ittt::fault
