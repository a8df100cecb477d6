// context.cpp: MPI (and NCCL) behind parallel::Context and parallel::Exchange.
#include "parallel/context.h"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "ops/ops.h"
#include "parallel/nccl_transport.h"

#if ITTT_WITH_MPI
#define OMPI_SKIP_MPICXX 1  // the C API only: the deprecated C++ bindings warn under -Wextra
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#include <unistd.h>
#endif

namespace ittt::parallel {

bool built_with_mpi() { return ITTT_WITH_MPI != 0; }
bool built_with_nccl() { return ITTT_WITH_NCCL != 0; }

const char* traffic_name(Traffic t) {
    switch (t) {
        case Traffic::Scan: return "scan";
        case Traffic::Halo: return "halo";
        case Traffic::Ring: return "ring";
        case Traffic::Gradients: return "gradients";
        case Traffic::Gather: return "gather";
        case Traffic::Check: return "check";
    }
    return "?";
}

int64_t TrafficCounter::bytes(int layer, Traffic kind) const {
    auto it = bytes_.find(layer);
    return it == bytes_.end() ? 0 : it->second[static_cast<int>(kind)];
}

int64_t TrafficCounter::total(Traffic kind) const {
    int64_t t = 0;
    for (const auto& [layer, b] : bytes_) t += b[static_cast<int>(kind)];
    return t;
}

std::string Context::who() const { return cat("context parallel, rank ", rank_, " of ", size_); }

// ---------------------------------------------------------------- shared by both builds

void Context::exclusive_scan_sum(Tensor& out, const Tensor& x, bool reverse, int layer) {
    ITTT_CHECK(out.shape() == x.shape() && out.dtype() == x.dtype() && out.device() == x.device(), who(),
               ": exclusive_scan_sum: out is ", out.describe(), ", x is ", x.describe());
    out.zero_();
    // Hillis-Steele on ranks: `window` holds the sum of x over the 2^k ranks ending at
    // this one (starting at it, in reverse). Round k adds the window of the rank 2^k
    // before: out collects everything before this rank, window grows to 2^(k+1).
    Tensor window = x.clone(), incoming = Tensor::empty(x.shape(), x.dtype(), x.device());
    const int step = reverse ? -1 : 1;
    for (int dist = 1; dist < size_; dist *= 2) {
        const int from = rank_ - step * dist, to = rank_ + step * dist;
        const bool has_from = from >= 0 && from < size_, has_to = to >= 0 && to < size_;
        Exchange ex(*this, Traffic::Scan, layer, cat("the TTT prefix scan, distance ", dist));
        if (has_to) ex.send(window, to);
        if (has_from) ex.recv(incoming, from);
        ex.start();
        ex.wait();
        if (has_from) {
            ops::add_inplace(out, incoming);
            ops::add_inplace(window, incoming);
        }
    }
}

double Context::allreduce_sum(double x) {
    Tensor t = Tensor::from_vector(std::vector<double>{x}, {1});
    allreduce_sum({&t}, Traffic::Check);
    return t.data<double>()[0];
}

namespace {
// parts[r] (its shape known to every rank) is rank r's contribution: rank 0 collects
// them all, then sends every part to every rank. Point-to-point on purpose: a rank
// that never reports is then named by rank 0's timeout.
void share_through_rank0(Context& ctx, std::vector<Tensor>& parts, const std::string& what) {
    const int me = ctx.rank();
    Exchange in(ctx, Traffic::Check, -1, what);
    for (int r = 1; r < ctx.size(); ++r)
        if (me == 0) in.recv(parts[static_cast<size_t>(r)], r);
    if (me != 0) in.send(parts[static_cast<size_t>(me)], 0);
    in.start();
    in.wait();
    Exchange out(ctx, Traffic::Check, -1, what + " (from rank 0)");
    for (size_t j = 0; j < parts.size(); ++j) {
        if (me != 0) out.recv(parts[j], 0);
        for (int r = 1; r < ctx.size() && me == 0; ++r) out.send(parts[j], r);
    }
    out.start();
    out.wait();
}
}  // namespace

std::vector<std::string> Context::allgather(const std::string& s) {
    const size_t R = static_cast<size_t>(size_), me = static_cast<size_t>(rank_);
    if (R == 1) return {s};
    // lengths first, then the bytes, four to an I32 element (one spare: never empty)
    std::vector<Tensor> lens(R), bytes(R);
    for (Tensor& t : lens) t = Tensor::zeros({1}, DType::I32);
    lens[me].data<int32_t>()[0] = static_cast<int32_t>(s.size());
    share_through_rank0(*this, lens, "the consistency check between ranks (lengths)");
    for (size_t r = 0; r < R; ++r) bytes[r] = Tensor::zeros({lens[r].data<int32_t>()[0] / 4 + 1}, DType::I32);
    std::memcpy(bytes[me].raw(), s.data(), s.size());
    share_through_rank0(*this, bytes, "the consistency check between ranks");
    std::vector<std::string> out(R);
    for (size_t r = 0; r < R; ++r)
        out[r] = std::string(static_cast<const char*>(bytes[r].raw()), static_cast<size_t>(lens[r].data<int32_t>()[0]));
    return out;
}

void Context::require_same(const std::string& what, const std::vector<std::pair<std::string, std::string>>& fields) {
    // One line per field, "key\tvalue": values are one-line descriptions.
    std::string mine;
    for (const auto& [k, v] : fields) mine += k + '\t' + v + '\n';
    std::vector<std::string> all = allgather(mine);
    auto parse = [](const std::string& s) {
        std::vector<std::pair<std::string, std::string>> out;
        size_t pos = 0;
        while (pos < s.size()) {
            size_t tab = s.find('\t', pos), nl = s.find('\n', pos);
            out.push_back({s.substr(pos, tab - pos), s.substr(tab + 1, nl - tab - 1)});
            pos = nl + 1;
        }
        return out;
    };
    const auto ref = parse(all[0]);
    for (int r = 1; r < size_; ++r) {
        if (all[static_cast<size_t>(r)] == all[0]) continue;
        const auto theirs = parse(all[static_cast<size_t>(r)]);
        for (size_t i = 0; i < std::max(ref.size(), theirs.size()); ++i) {
            if (i < ref.size() && i < theirs.size() && ref[i] == theirs[i]) continue;
            if (i >= ref.size() || i >= theirs.size() || ref[i].first != theirs[i].first)
                fail(cat("context parallel: rank ", r, " disagrees with rank 0 on ", what, ": its fields differ at '",
                         i < theirs.size() ? theirs[i].first : "(none)", "' (rank 0: '", i < ref.size() ? ref[i].first : "(none)",
                         "'); every rank must run the same command"));
            fail(cat("context parallel: rank ", r, " disagrees with rank 0 on ", what, ": ", ref[i].first, " is ", theirs[i].second,
                     " on rank ", r, ", ", ref[i].second, " on rank 0; every rank must run the same command"));
        }
    }
}

#if ITTT_WITH_MPI
// ================================================================ MPI build

namespace {

// What this rank is waiting for, for the SIGTERM handler: mpirun stops every rank
// with SIGTERM when one exits early, and a rank that was waiting should say so.
char g_activity[512] = "";
char g_who[96] = "";

void on_sigterm(int) {
    char line[768];
    int len = std::snprintf(line, sizeof line,
                            "ittt (%s): stopped by SIGTERM (from mpirun?) %s%s; another rank has probably ended early "
                            "(exited, crashed or aborted after an error: mpirun's message names it)\n",
                            g_who, g_activity[0] ? "while waiting for " : "while computing", g_activity);
    if (len > 0) (void)!::write(2, line, static_cast<size_t>(std::min<int>(len, sizeof line - 1)));
    ::_exit(143);
}

struct Activity {
    Activity(const std::string& what) { std::snprintf(g_activity, sizeof g_activity, "%s", what.c_str()); }
    ~Activity() { g_activity[0] = '\0'; }
};

bool g_initialised_here = false;

bool mpi_running() {
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    return init && !fin;
}


[[noreturn]] void mpi_fail(const std::string& who, const char* call, int rc) {
    char msg[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    fail(cat(who, ": ", call, " failed: ", msg));
}

double env_timeout() {
    const char* s = std::getenv("ITTT_CP_TIMEOUT");
    if (!s || !*s) return 300;
    char* end = nullptr;
    double v = std::strtod(s, &end);
    ITTT_CHECK(end && *end == '\0' && v > 0, "ITTT_CP_TIMEOUT must be a number of seconds > 0, found '", s, "'");
    return v;
}

MPI_Datatype mpi_type(DType t) {
    switch (t) {
        case DType::F32: return MPI_FLOAT;
        case DType::F64: return MPI_DOUBLE;
        case DType::I32: return MPI_INT;
    }
    return MPI_BYTE;
}

// Polls the requests until all are done. Past the deadline: an Error naming what was
// awaited and from whom (peers[i] belongs to reqs[i]; -1: a collective of all ranks).
void wait_requests(const Context& ctx, std::vector<MPI_Request>& reqs, const std::vector<int>& peers, const std::string& what) {
    Activity activity(what);
    const auto t0 = std::chrono::steady_clock::now();
    for (long poll = 0;; ++poll) {
        bool all = true;
        for (MPI_Request& r : reqs) {
            if (r == MPI_REQUEST_NULL) continue;
            int done = 0;
            int rc = MPI_Test(&r, &done, MPI_STATUS_IGNORE);
            if (rc != MPI_SUCCESS) mpi_fail(ctx.who(), cat("MPI_Test (", what, ")").c_str(), rc);
            all = all && done;
        }
        if (all) return;
        double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (waited > ctx.timeout_s()) {
            std::string from;
            for (size_t i = 0; i < reqs.size(); ++i)
                if (reqs[i] != MPI_REQUEST_NULL) {
                    std::string p = peers[i] < 0 ? "all ranks" : cat("rank ", peers[i]);
                    if (from.find(p) == std::string::npos) from += (from.empty() ? "" : ", ") + p;
                }
            fail(cat(ctx.who(), ": timed out after ", ctx.timeout_s(), " s waiting for ", from, " (", what,
                     "); is that rank still running? (ITTT_CP_TIMEOUT sets the limit in seconds)"));
        }
        // A few fast polls for short waits, then yield the core: ranks are often
        // oversubscribed (more ranks than cores), and a spinning waiter slows the sender.
        if (poll > 200) std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
}

}  // namespace

struct Context::Impl {
    MPI_Comm comm = MPI_COMM_NULL;
    std::unique_ptr<nccl::Comm, void (*)(nccl::Comm*)> nccl{nullptr, nccl::destroy};
    ~Impl() {
        nccl.reset();
        if (comm != MPI_COMM_NULL && mpi_running()) MPI_Comm_free(&comm);
    }
};

namespace {
// A duplicate of `parent` that returns errors instead of aborting.
std::unique_ptr<Context::Impl> impl_for(MPI_Comm comm) {
    auto impl = std::make_unique<Context::Impl>();
    impl->comm = comm;
    MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
    return impl;
}
}  // namespace

Context::Context(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {
    MPI_Comm_rank(impl_->comm, &rank_);
    MPI_Comm_size(impl_->comm, &size_);
    timeout_s_ = env_timeout();
}

Context::~Context() = default;

Context& Context::world() {
    static Context* w = [] {
        if (!mpi_running()) {
            int provided = 0;
            // FUNNELED: OpenMP threads compute, only the main thread calls MPI.
            int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
            if (rc != MPI_SUCCESS) fail("context parallel: MPI_Init_thread failed (is this run under mpirun?)");
            // No atexit(MPI_Finalize): a rank that calls exit() on an error would wait in
            // MPI_Finalize for the others, which wait for it. finish_job() finalizes.
            g_initialised_here = true;
        }
        MPI_Comm comm;
        MPI_Comm_dup(MPI_COMM_WORLD, &comm);
        auto* c = new Context(impl_for(comm));  // lives until exit, like MPI itself
        std::snprintf(g_who, sizeof g_who, "%s", c->who().c_str());
        if (c->size() > 1) std::signal(SIGTERM, on_sigterm);
        return c;
    }();
    return *w;
}

std::unique_ptr<Context> Context::first_ranks(int count) {
    ITTT_CHECK(count >= 1 && count <= size_, who(), ": first_ranks(", count, ") needs 1 .. ", size_, " ranks");
    MPI_Comm sub = MPI_COMM_NULL;
    int rc = MPI_Comm_split(impl_->comm, rank_ < count ? 0 : MPI_UNDEFINED, rank_, &sub);
    if (rc != MPI_SUCCESS) mpi_fail(who(), "MPI_Comm_split", rc);
    if (sub == MPI_COMM_NULL) return nullptr;
    std::unique_ptr<Context> c(new Context(impl_for(sub)));
    c->timeout_s_ = timeout_s_;
    return c;
}

void Context::allreduce_sum(const std::vector<Tensor*>& tensors, Traffic kind) {
    if (size_ == 1 || tensors.empty()) return;
    const DType dt = tensors[0]->dtype();
    const Device dev = tensors[0]->device();
    int64_t count = 0;
    for (Tensor* t : tensors) {
        ITTT_CHECK(t->dtype() == dt && t->device() == dev && dt != DType::I32, who(), ": allreduce_sum: ", t->describe(),
                   " does not match ", tensors[0]->describe(), " (one float dtype and device for all)");
        count += t->numel();
    }
    // Nominal bytes of a ring all-reduce: (R-1)/R of the payload in the reduce-scatter, as much in the all-gather.
    traffic_.add(-1, kind, 2 * count * static_cast<int64_t>(dtype_size(dt)) * (size_ - 1) / size_);
    if (dev == Device::CUDA) {
        ITTT_CHECK(impl_->nccl, who(), ": CUDA tensors need NCCL: ", built_with_nccl() ? "call prepare_device first" : "this build has none (NCCL=0)");
        nccl::allreduce_sum(*impl_->nccl, tensors, timeout_s_, who());
        return;
    }
    // Pack into one buffer padded to a multiple of R; rank r sums block r of it
    // (reduce-scatter), then every rank collects every block (all-gather).
    const int64_t block = (count + size_ - 1) / size_;
    const size_t esize = dtype_size(dt);
    std::vector<char> packed(static_cast<size_t>(block * size_) * esize, 0), mine(static_cast<size_t>(block) * esize);
    size_t off = 0;
    for (Tensor* t : tensors) {
        std::memcpy(packed.data() + off, t->raw(), t->bytes());
        off += t->bytes();
    }
    ITTT_CHECK(block <= INT32_MAX, who(), ": allreduce_sum of ", count, " elements is too large for one MPI message");
    std::vector<MPI_Request> req(1);
    int rc = MPI_Ireduce_scatter_block(packed.data(), mine.data(), static_cast<int>(block), mpi_type(dt), MPI_SUM, impl_->comm, &req[0]);
    if (rc != MPI_SUCCESS) mpi_fail(who(), "MPI_Ireduce_scatter_block", rc);
    wait_requests(*this, req, {-1}, cat("the ", traffic_name(kind), " all-reduce (reduce-scatter)"));
    rc = MPI_Iallgather(mine.data(), static_cast<int>(block), mpi_type(dt), packed.data(), static_cast<int>(block), mpi_type(dt),
                        impl_->comm, &req[0]);
    if (rc != MPI_SUCCESS) mpi_fail(who(), "MPI_Iallgather", rc);
    wait_requests(*this, req, {-1}, cat("the ", traffic_name(kind), " all-reduce (all-gather)"));
    off = 0;
    for (Tensor* t : tensors) {
        std::memcpy(t->raw(), packed.data() + off, t->bytes());
        off += t->bytes();
    }
}

void Context::prepare_device(Device device) {
    if (device != Device::CUDA || impl_->nccl) return;
    ITTT_CHECK(built_with_nccl(), who(), ": context parallelism on CUDA tensors needs NCCL, and this build has none "
               "(install NCCL and rebuild with CUDA=1 NCCL=1)");
    // Rank 0 makes the NCCL id, MPI carries it to the others.
    std::vector<char> id(nccl::kUniqueIdBytes);
    if (rank_ == 0) nccl::unique_id(id.data());
    int rc = MPI_Bcast(id.data(), static_cast<int>(id.size()), MPI_BYTE, 0, impl_->comm);
    if (rc != MPI_SUCCESS) mpi_fail(who(), "MPI_Bcast (NCCL id)", rc);
    impl_->nccl.reset(nccl::create(id.data(), rank_, size_, who()));
}

// ---------------------------------------------------------------- Exchange

struct Exchange::Pending {
    Traffic kind;
    int layer;
    std::string what;
    struct Op {
        bool is_send;
        Tensor t;  // a handle: keeps the buffer alive until wait()
        int peer;
    };
    std::vector<Op> ops;
    std::vector<MPI_Request> reqs;
    bool started = false, waited = false, on_device = false;
};

Exchange::Exchange(Context& ctx, Traffic kind, int layer, std::string what) : ctx_(&ctx), p_(std::make_unique<Pending>()) {
    p_->kind = kind;
    p_->layer = layer;
    p_->what = std::move(what);
    if (layer >= 0) p_->what += cat(", layer ", layer);
}
Exchange::Exchange(Exchange&&) noexcept = default;
Exchange& Exchange::operator=(Exchange&&) noexcept = default;
Exchange::~Exchange() {
    if (p_ && p_->started && !p_->waited) {
        try {
            wait();
        } catch (const Error& e) {
            std::fprintf(stderr, "ittt: %s\n", e.what());
            ctx_->abort_now(1);
        }
    }
}

bool Exchange::empty() const { return p_->ops.empty(); }

void Exchange::send(const Tensor& t, int peer) {
    ITTT_CHECK(!p_->started, "Exchange::send after start (", p_->what, ")");
    ITTT_CHECK(peer >= 0 && peer < ctx_->size() && peer != ctx_->rank(), ctx_->who(), ": no rank ", peer, " to send to (", p_->what, ")");
    p_->ops.push_back({true, t, peer});
}

void Exchange::recv(Tensor& t, int peer) {
    ITTT_CHECK(!p_->started, "Exchange::recv after start (", p_->what, ")");
    ITTT_CHECK(peer >= 0 && peer < ctx_->size() && peer != ctx_->rank(), ctx_->who(), ": no rank ", peer, " to receive from (", p_->what, ")");
    p_->ops.push_back({false, t, peer});
}

void Exchange::start() {
    ITTT_CHECK(!p_->started, "Exchange::start twice (", p_->what, ")");
    p_->started = true;
    if (p_->ops.empty()) return;
    p_->on_device = p_->ops[0].t.device() == Device::CUDA;
    for (const Pending::Op& op : p_->ops) {
        ITTT_CHECK((op.t.device() == Device::CUDA) == p_->on_device, ctx_->who(), ": one exchange mixes CPU and CUDA tensors (", p_->what, ")");
        if (op.is_send) ctx_->traffic().add(p_->layer, p_->kind, static_cast<int64_t>(op.t.bytes()));
    }
    if (p_->on_device) {
        ITTT_CHECK(ctx_->impl().nccl, ctx_->who(), ": CUDA tensors need NCCL (", p_->what, ")");
        std::vector<nccl::Op> ops;
        for (Pending::Op& op : p_->ops) ops.push_back({op.is_send, &op.t, op.peer});
        nccl::start(*ctx_->impl().nccl, ops, ctx_->who());
        return;
    }
    // Tags by kind: a message can only match a receive posted for the same purpose.
    const int tag = 100 + static_cast<int>(p_->kind);
    for (Pending::Op& op : p_->ops) {
        ITTT_CHECK(op.t.bytes() <= static_cast<size_t>(INT32_MAX), ctx_->who(), ": a message of ", op.t.bytes(),
                   " bytes is more than one MPI message can hold (", p_->what, ")");
        MPI_Request r;
        int rc = op.is_send ? MPI_Isend(op.t.raw(), static_cast<int>(op.t.bytes()), MPI_BYTE, op.peer, tag, ctx_->impl().comm, &r)
                            : MPI_Irecv(op.t.raw(), static_cast<int>(op.t.bytes()), MPI_BYTE, op.peer, tag, ctx_->impl().comm, &r);
        if (rc != MPI_SUCCESS) mpi_fail(ctx_->who(), op.is_send ? "MPI_Isend" : "MPI_Irecv", rc);
        p_->reqs.push_back(r);
    }
}

void Exchange::wait() {
    ITTT_CHECK(p_->started, "Exchange::wait before start (", p_->what, ")");
    if (p_->waited) return;
    p_->waited = true;
    if (p_->ops.empty()) return;
    std::string what;
    for (const Pending::Op& op : p_->ops)
        if (!op.is_send) what += (what.empty() ? "" : ", ") + cat("rank ", op.peer);
    what = p_->what + (what.empty() ? "" : " from " + what);
    if (p_->on_device) {
        nccl::wait(*ctx_->impl().nccl, ctx_->timeout_s(), ctx_->who() + ": " + what);
        return;
    }
    std::vector<int> peers;
    for (const Pending::Op& op : p_->ops) peers.push_back(op.peer);
    wait_requests(*ctx_, p_->reqs, peers, what);
}

void Context::abort_now(int code) { MPI_Abort(impl_->comm, code); std::_Exit(code); }

int finish_job(int exit_code) {
    if (g_initialised_here && mpi_running()) {
        if (exit_code != 0) abort_job_after_error(exit_code);
        MPI_Finalize();
    }
    return exit_code;
}

void abort_job_after_error(int exit_code) {
    if (!mpi_running()) return;
    int size = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    std::fflush(stdout);
    std::fflush(stderr);
    if (size > 1) MPI_Abort(MPI_COMM_WORLD, exit_code);
}

#else
// ================================================================ build without MPI

namespace {
[[noreturn]] void no_mpi() {
    fail("context parallel: this build has no MPI; rebuild with MPI=1 (needs the Debian packages libopenmpi-dev and openmpi-bin)");
}
}  // namespace

struct Context::Impl {};
struct Exchange::Pending {};
Context::Context(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Context::~Context() = default;
Context& Context::world() { no_mpi(); }
std::unique_ptr<Context> Context::first_ranks(int) { no_mpi(); }
void Context::allreduce_sum(const std::vector<Tensor*>&, Traffic) { no_mpi(); }
void Context::prepare_device(Device) { no_mpi(); }
void Context::abort_now(int code) { std::_Exit(code); }
Exchange::Exchange(Context& ctx, Traffic, int, std::string) : ctx_(&ctx) { no_mpi(); }
Exchange::Exchange(Exchange&&) noexcept = default;
Exchange& Exchange::operator=(Exchange&&) noexcept = default;
Exchange::~Exchange() = default;
void Exchange::send(const Tensor&, int) { no_mpi(); }
void Exchange::recv(Tensor&, int) { no_mpi(); }
void Exchange::start() { no_mpi(); }
void Exchange::wait() { no_mpi(); }
bool Exchange::empty() const { return true; }
void abort_job_after_error(int) {}
int finish_job(int exit_code) { return exit_code; }

#endif

}  // namespace ittt::parallel
