// nccl_transport.cpp: see nccl_transport.h. Compiled, never run here (no GPU).
#include "parallel/nccl_transport.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "runtime/error.h"

#if ITTT_WITH_NCCL
#include <cuda_runtime.h>
#include <nccl.h>
#endif

namespace ittt::parallel::nccl {

#if ITTT_WITH_NCCL

struct Comm {
    ncclComm_t comm = nullptr;
    cudaStream_t stream = nullptr;
};

namespace {
void check(ncclResult_t r, const std::string& who, const char* call) {
    if (r != ncclSuccess) fail(cat(who, ": ", call, " failed: ", ncclGetErrorString(r)));
}
void check(cudaError_t r, const std::string& who, const char* call) {
    if (r != cudaSuccess) fail(cat(who, ": ", call, " failed: ", cudaGetErrorString(r)));
}
ncclDataType_t nccl_type(DType t) {
    switch (t) {
        case DType::F32: return ncclFloat32;
        case DType::F64: return ncclFloat64;
        case DType::I32: return ncclInt32;
    }
    return ncclChar;
}
}  // namespace

static_assert(sizeof(ncclUniqueId) == kUniqueIdBytes, "NCCL_UNIQUE_ID_BYTES changed");

void unique_id(void* out) {
    ncclUniqueId id;
    check(ncclGetUniqueId(&id), "context parallel", "ncclGetUniqueId");
    std::memcpy(out, &id, sizeof id);
}

Comm* create(const void* id_bytes, int rank, int size, const std::string& who) {
    // One GPU per rank: OpenMPI numbers the ranks of a node 0, 1, ... in this variable.
    int gpus = 0;
    check(cudaGetDeviceCount(&gpus), who, "cudaGetDeviceCount");
    ITTT_CHECK(gpus > 0, who, ": no CUDA device for NCCL");
    const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_RANK");
    check(cudaSetDevice((local ? std::atoi(local) : rank) % gpus), who, "cudaSetDevice");
    ncclUniqueId id;
    std::memcpy(&id, id_bytes, sizeof id);
    auto* c = new Comm;
    check(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking), who, "cudaStreamCreate");
    check(ncclCommInitRank(&c->comm, size, id, rank), who, "ncclCommInitRank");
    return c;
}

void destroy(Comm* c) {
    if (!c) return;
    if (c->comm) ncclCommDestroy(c->comm);
    if (c->stream) cudaStreamDestroy(c->stream);
    delete c;
}

void start(Comm& c, const std::vector<Op>& ops, const std::string& who) {
    // The ops ran on the default stream; the data must be there before NCCL reads it.
    check(cudaDeviceSynchronize(), who, "cudaDeviceSynchronize");
    check(ncclGroupStart(), who, "ncclGroupStart");
    for (const Op& op : ops) {
        if (op.is_send) check(ncclSend(op.t->raw(), op.t->bytes(), ncclChar, op.peer, c.comm, c.stream), who, "ncclSend");
        else check(ncclRecv(op.t->raw(), op.t->bytes(), ncclChar, op.peer, c.comm, c.stream), who, "ncclRecv");
    }
    check(ncclGroupEnd(), who, "ncclGroupEnd");
}

void wait(Comm& c, double timeout_s, const std::string& what) {
    const auto t0 = std::chrono::steady_clock::now();
    for (;;) {
        cudaError_t r = cudaStreamQuery(c.stream);
        if (r == cudaSuccess) return;
        if (r != cudaErrorNotReady) check(r, what, "cudaStreamQuery");
        ncclResult_t async = ncclSuccess;
        check(ncclCommGetAsyncError(c.comm, &async), what, "ncclCommGetAsyncError");
        check(async, what, "NCCL (asynchronous error)");
        if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > timeout_s) {
            ncclCommAbort(c.comm);
            c.comm = nullptr;
            fail(cat(what, ": timed out after ", timeout_s, " s (NCCL); is every rank still running?"));
        }
        std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
}

void allreduce_sum(Comm& c, const std::vector<Tensor*>& tensors, double timeout_s, const std::string& who) {
    check(cudaDeviceSynchronize(), who, "cudaDeviceSynchronize");
    check(ncclGroupStart(), who, "ncclGroupStart");
    for (Tensor* t : tensors)
        check(ncclAllReduce(t->raw(), t->raw(), static_cast<size_t>(t->numel()), nccl_type(t->dtype()), ncclSum, c.comm, c.stream), who,
              "ncclAllReduce");
    check(ncclGroupEnd(), who, "ncclGroupEnd");
    wait(c, timeout_s, who + ": the gradient all-reduce");
}

#else

struct Comm {};
namespace {
[[noreturn]] void no_nccl() {
    fail("context parallel: CUDA tensors need NCCL, and this build has none (install NCCL and rebuild with CUDA=1 NCCL=1)");
}
}  // namespace
void unique_id(void*) { no_nccl(); }
Comm* create(const void*, int, int, const std::string&) { no_nccl(); }
void destroy(Comm* c) { delete c; }
void start(Comm&, const std::vector<Op>&, const std::string&) { no_nccl(); }
void wait(Comm&, double, const std::string&) { no_nccl(); }
void allreduce_sum(Comm&, const std::vector<Tensor*>&, double, const std::string&) { no_nccl(); }

#endif

}  // namespace ittt::parallel::nccl
