// context.h: the communicator behind context parallelism (docs/parallelism.md).
//
// One Context per group of ranks that share sequences: rank r holds slice r of
// every sequence (slice_plan.h). It offers the few exchanges the model needs and
// counts the bytes each one sends:
//
//   Exchange                 nonblocking sends and receives, started together and
//                            completed by wait() (halo, ring, the scan's rounds)
//   exclusive_scan_sum       out_r = sum of x over the ranks before r (or after r):
//                            the TTT fast-weight prefix, log2(R) rounds
//   allreduce_sum            parameter gradients; every rank gets the same bits
//   allgather / require_same the consistency checks between ranks
//
// Transport: MPI (MPI=1 at build time) for CPU tensors; NCCL for CUDA tensors when
// it was found at build time (NCCL=1), with MPI only to set NCCL up. Nothing here
// includes mpi.h, so the rest of the code builds the same with or without MPI.
//
// Failures end the job instead of hanging it: every wait has a deadline
// (ITTT_CP_TIMEOUT seconds, default 300) after which the waiting rank throws an
// Error naming the peer and the exchange; MPI calls return errors (MPI_ERRORS_RETURN)
// that become Errors naming the call; and when mpirun stops a rank because another
// one died, the rank's SIGTERM handler prints what it was waiting for.
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "runtime/tensor.h"

namespace ittt::parallel {

bool built_with_mpi();
bool built_with_nccl();

// What a message is for; the byte counters are split by it.
enum class Traffic { Scan, Halo, Ring, Gradients, Gather, Check };
constexpr int kTrafficKinds = 6;
const char* traffic_name(Traffic t);  // "scan", "halo", ...

// Bytes this rank has sent, by layer (-1: not a layer's traffic) and kind.
class TrafficCounter {
public:
    void add(int layer, Traffic kind, int64_t bytes) { bytes_[layer][static_cast<int>(kind)] += bytes; }
    int64_t bytes(int layer, Traffic kind) const;
    int64_t total(Traffic kind) const;  // over all layers
    void reset() { bytes_.clear(); }

private:
    std::map<int, std::array<int64_t, kTrafficKinds>> bytes_;
};

class Context {
public:
    // The ranks mpirun started (MPI_COMM_WORLD). Initialises MPI on the first call;
    // finish_job() finalizes it. Throws an Error in a build without MPI.
    static Context& world();
    // A context over ranks 0 .. count-1 of this one (collective over this one);
    // nullptr on the ranks left out. Tests and the benchmark compare R = 1, 2, ...
    // inside one mpirun.
    std::unique_ptr<Context> first_ranks(int count);
    ~Context();
    Context(const Context&) = delete;
    Context& operator=(const Context&) = delete;

    int rank() const { return rank_; }
    int size() const { return size_; }

    // out (same shape as x): the sum of x over ranks 0 .. rank-1 (reverse: rank+1 ..
    // size-1), zeros on rank 0 (reverse: the last rank). A log-step scan: in round k
    // rank r receives the running sum of the 2^k ranks before it from r - 2^k.
    // Counted as Traffic::Scan of `layer`.
    void exclusive_scan_sum(Tensor& out, const Tensor& x, bool reverse, int layer);
    // Sums every tensor over the ranks in place (all one dtype and device). Done as
    // reduce-scatter + all-gather, so each element is summed once and every rank
    // ends with the same bits: the optimizer step is then identical everywhere.
    void allreduce_sum(const std::vector<Tensor*>& tensors, Traffic kind);
    double allreduce_sum(double x);
    // Every rank's string, in rank order (Traffic::Check).
    std::vector<std::string> allgather(const std::string& s);
    // Throws the same Error on every rank when some rank's fields differ from rank
    // 0's, naming the first such rank and field: "rank 1 disagrees with rank 0 on
    // <what>: ttt_chunk is 8 there, 4 on rank 0".
    void require_same(const std::string& what, const std::vector<std::pair<std::string, std::string>>& fields);

    // Sets up the transport for tensors on `device` (collective): for CUDA, picks this
    // rank's GPU (local rank modulo the GPUs of the node) and creates the NCCL
    // communicator. Nothing to do for CPU tensors. Call it before the model is loaded.
    void prepare_device(Device device);

    TrafficCounter& traffic() { return traffic_; }
    const TrafficCounter& traffic() const { return traffic_; }

    double timeout_s() const { return timeout_s_; }
    void set_timeout_s(double s) { timeout_s_ = s; }
    // "context parallel, rank 1 of 4": the prefix of this rank's messages.
    std::string who() const;
    // Ends the whole job now (MPI_Abort), for a failure where no Error can be thrown.
    [[noreturn]] void abort_now(int code);

    struct Impl;  // the MPI communicator (and the NCCL one), in context.cpp
    Impl& impl() { return *impl_; }

private:
    explicit Context(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
    int rank_ = 0, size_ = 1;
    double timeout_s_ = 300;
    TrafficCounter traffic_;
};

// A batch of nonblocking sends and receives between ranks of one context:
//
//   Exchange ex(ctx, Traffic::Halo, layer, "halo keys/values");
//   ex.send(k_tail, next_rank);  ex.recv(k_halo, prev_rank);
//   ex.start();   ... compute that does not need k_halo ...   ex.wait();
//
// Sent tensors must not change and received ones must not be read until wait().
// Messages between two ranks match in the order they were posted.
class Exchange {
public:
    Exchange(Context& ctx, Traffic kind, int layer, std::string what);
    Exchange(Exchange&&) noexcept;
    Exchange& operator=(Exchange&&) noexcept;
    ~Exchange();  // waits if started and not yet waited

    void send(const Tensor& t, int peer);
    void recv(Tensor& t, int peer);
    void start();
    void wait();
    bool empty() const;

    struct Pending;  // the posted requests, in context.cpp

private:
    Context* ctx_;
    std::unique_ptr<Pending> p_;
};

// For main(), at the end of a command that may have run context parallel: finalizes
// MPI if Context::world() started it (every rank must get here), or, for a nonzero
// exit code, ends the job as abort_job_after_error does. Returns exit_code.
int finish_job(int exit_code);
// For main(): an Error is ending this process. With more than one rank running,
// calls MPI_Abort so that the others stop too instead of waiting for this one;
// otherwise (or without MPI) does nothing.
void abort_job_after_error(int exit_code);

}  // namespace ittt::parallel
