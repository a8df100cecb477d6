// nccl_transport.h: the NCCL half of parallel::Context, for CUDA tensors (internal to
// src/parallel). Compiled when NCCL is found (NCCL=1, which needs CUDA=1 and MPI=1);
// otherwise every function but destroy() throws an Error saying the build has none.
//
// Not run on the machine this was written on (no GPU): it is compiled, not tested.
// docs/parallelism.md says what a run on GPUs would have to check.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "runtime/tensor.h"

namespace ittt::parallel::nccl {

struct Comm;                                  // an NCCL communicator and its stream
constexpr size_t kUniqueIdBytes = 128;        // NCCL_UNIQUE_ID_BYTES

void unique_id(void* out);                    // rank 0 makes it, MPI broadcasts it
// Picks GPU (local_rank mod GPUs of the node), then joins the communicator.
Comm* create(const void* id, int rank, int size, const std::string& who);
void destroy(Comm* c);

struct Op {
    bool is_send;
    Tensor* t;
    int peer;
};
// One NCCL group of sends and receives on the communicator's stream, after the
// device's queued work (which produced the data) has finished.
void start(Comm& c, const std::vector<Op>& ops, const std::string& who);
// Polls the stream until the group is done; past timeout_s an Error naming `what`.
void wait(Comm& c, double timeout_s, const std::string& what);
// In-place sum over ranks, then waits. NCCL's ring and tree all-reduce both reduce
// each element once and broadcast it, so every rank gets the same bits.
void allreduce_sum(Comm& c, const std::vector<Tensor*>& tensors, double timeout_s, const std::string& who);

}  // namespace ittt::parallel::nccl
