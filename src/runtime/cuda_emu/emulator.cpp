// emulator.cpp (CUDA emulator): the scheduler. Blocks run one after another; the
// threads of a block are fibers, switched at barriers and warp operations.
//
// Scheduling, in short (docs/cuda-emulator.md has the long form):
// - A block's threads start in order on a "runner" fiber: thread t runs as a plain
//   call, and when it returns the same fiber starts thread t + 1. A thread that
//   reaches a barrier keeps the fiber it is on; the next thread gets another one.
//   So a kernel without barriers runs all its threads on one fiber, with no
//   switches, and fibers are reused across blocks and launches.
// - A barrier (or warp operation) completes when its last participant arrives;
//   that thread goes on at once, and the others become ready, to run in thread
//   order once it suspends. Ready threads run before new ones start.
// - Nothing ready and nothing left to start: the host fiber takes over. If the
//   block is not finished, the threads left are waiting for each other: deadlock.
// - ThreadSanitizer builds give every thread index its own fiber (a shared runner
//   would hide races between the threads it runs) and order the threads only by
//   the barriers: an arrival releases the barrier's address, the last arrival
//   acquires it and releases into each waiting thread's own address, which that
//   thread acquires when it resumes. A thread that resumes late therefore never
//   sees what the others did after the barrier (which one shared address per
//   barrier would allow, hiding write-after-read races). Blocks are ordered
//   one after another (the emulator runs them so), and the host before and after.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <string>
#include <vector>

#include "fiber.h"
#include "internal.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif
#if defined(ITTT_EMU_TSAN)
#include <sanitizer/tsan_interface.h>
#endif

uint3 threadIdx;
uint3 blockIdx;
dim3 blockDim;
dim3 gridDim;

namespace ittt::cuda_emu {

namespace {

#if defined(ITTT_EMU_TSAN)
constexpr bool kFiberPerThread = true;
void tsan_acquire(void* address) { __tsan_acquire(address); }
void tsan_release(void* address) { __tsan_release(address); }
#else
constexpr bool kFiberPerThread = false;
void tsan_acquire(void*) {}
void tsan_release(void*) {}
#endif

enum class State : uint8_t { Unstarted, Running, Ready, AtBarrier, AtWarp, Exited };

struct Thread {
    State state = State::Unstarted;
    Fiber* fiber = nullptr;
    Site site{nullptr, 0};   // where it waits
    const char* what = "";   // the warp operation it waits in
    unsigned mask = 0;       // ... and that operation's mask
    int src_lane = -1;       // the lane whose value it reads
    uint64_t result = 0;     // the shuffle's value, or the barrier's count / flag
    char wake_sync = 0;      // TSan: released by whoever wakes this thread
};

// The warp operation being assembled (one at a time per warp).
struct Warp {
    unsigned arrived = 0;
    unsigned mask = 0;
    const char* what = "";
    Site site{nullptr, 0};
    uint64_t value[32] = {};
    void* data[32] = {};
    char arrive_sync = 0;
};

struct Block {
    int n = 0;            // threads in the block
    int started = 0;      // threads started so far, in index order
    int exited = 0;
    int waiting = 0;      // threads at the block barrier
    int count = 0;        // predicates counted by __syncthreads_count / _and / _or
    BarrierKind kind = BarrierKind::Sync;
    Site barrier_site{nullptr, 0};
    char arrive_sync = 0;
    std::vector<Thread> threads;
    std::vector<Warp> warps;
    // Threads to resume, first in first out: a ring of fixed size (a thread is in it at most
    // once), so that no container grows inside a fiber (ThreadSanitizer would see the
    // library's out-of-line, instrumented code doing it).
    int ready[kMaxThreadsPerBlock];
    int ready_head = 0, ready_count = 0;
    bool aborted = false;
    std::string fault;
};

struct Running {
    const LaunchRequest* request = nullptr;
    KernelInfo* kernel = nullptr;
    ThreadBody body = nullptr;
    void* context = nullptr;
    unsigned char* dynamic_shared = nullptr;  // this launch's buffer, reused by every block
    size_t dynamic_bytes = 0;
};

std::mutex g_launch_mutex;  // one launch at a time in the process
Running g_run;
Block g_block;
Fiber* g_current = nullptr;  // the fiber running now
int g_thread = -1;           // the CUDA thread running now (-1: the host)
// The fibers live as long as the process (never destroyed, so never reported as leaks).
struct Pool {
    std::vector<Fiber*> idle;   // fibers between threads, ready to start one
    std::vector<Fiber*> slots;  // TSan builds: the fiber of each thread index
    std::vector<Fiber*> all;
};
Pool& pool() {
    static Pool* p = [] {
        // Room for every fiber up front: under ThreadSanitizer, a vector growing inside one
        // fiber and read by another would look like a race in the emulator's bookkeeping.
        Pool* q = new Pool;
        q->idle.reserve(2 * kMaxThreadsPerBlock);
        q->slots.reserve(2 * kMaxThreadsPerBlock);
        q->all.reserve(2 * kMaxThreadsPerBlock);
        return q;
    }();
    return *p;
}
char g_block_start_sync = 0, g_block_end_sync = 0;

constexpr size_t kGuardBytes = 64;  // canary after dynamic shared memory (builds without ASan)
constexpr unsigned char kCanary = 0xA5;

std::string site_str(Site s) { return s.file ? cat(s.file, ":", s.line) : std::string("?"); }
bool same_site(Site a, Site b) { return a.line == b.line && (a.file == b.file || std::strcmp(a.file, b.file) == 0); }
std::string hex(unsigned v) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "0x%08x", v);
    return buf;
}
std::string dim_str(uint3 d) { return cat("(", d.x, ", ", d.y, ", ", d.z, ")"); }
uint3 thread_index(int t) {
    const unsigned bx = blockDim.x, by = blockDim.y, u = static_cast<unsigned>(t);
    return {u % bx, u / bx % by, u / (bx * by)};
}
std::string thread_str(int t) {
    return cat("thread ", dim_str(thread_index(t)), " (linear ", t, ", warp ", t / 32, " lane ", t % 32, ")");
}
// "kernel K (launched at F:L), block (x, y, z) of grid (...)"
std::string where_in_launch() {
    return cat("kernel ", g_run.kernel->name, " (launched at ", g_run.request->file, ":", g_run.request->line, "), block ",
               dim_str(blockIdx), " of grid ", dim_str(gridDim), ", block size ", dim_str(blockDim));
}

// Makes thread t the one running: its built-in variables, and the bookkeeping.
void bind(int t) {
    g_thread = t;
    threadIdx = thread_index(t);
}

// ---- choosing what runs next ----

void main_loop();

// Thrown by fault(): unwinds the faulting thread's stack back to main_loop, so that
// nothing it allocated is left behind on an abandoned stack.
struct KernelFault {};

// Stops the block: the report names the kernel, block and the running thread.
void record_fault(const std::string& message, Site site) {
    Block& b = g_block;
    if (b.aborted) return;  // the first fault is the one reported
    b.fault = cat("cuda emulator: fault in ", where_in_launch(), ", ", thread_str(g_thread), site.file ? cat(", at ", site_str(site)) : std::string(),
                  ": ", message);
    b.aborted = true;
}

Fiber* new_fiber(int slot) {
    // TSan reports name a fiber by this: in TSan builds it always runs the same thread index
    // (the string is kept: TSan holds on to it).
    const char* name = kFiberPerThread ? strdup(cat("CUDA thread ", slot, " (linear index) of every block").c_str()) : "CUDA threads";
    Fiber* f = create_fiber(&main_loop, name);
    pool().all.push_back(f);
    if (kFiberPerThread) {
        if (pool().slots.size() <= static_cast<size_t>(slot)) pool().slots.resize(static_cast<size_t>(slot) + 1, nullptr);
        pool().slots[static_cast<size_t>(slot)] = f;
    }
    return f;
}

// A fiber to start thread `next` on.
Fiber* fiber_for_new_thread(int next) {
    if (kFiberPerThread) {
        Fiber* f = static_cast<size_t>(next) < pool().slots.size() ? pool().slots[static_cast<size_t>(next)] : nullptr;
        return f ? f : new_fiber(next);
    }
    if (!pool().idle.empty()) {
        Fiber* f = pool().idle.back();
        pool().idle.pop_back();
        return f;
    }
    return new_fiber(0);
}

// Ready threads first, then new threads, then the host.
Fiber* pick_next() {
    Block& b = g_block;
    if (b.aborted) return host_fiber();
    if (b.ready_count > 0) {
        const int t = b.ready[b.ready_head];
        b.ready_head = (b.ready_head + 1) % kMaxThreadsPerBlock;
        --b.ready_count;
        b.threads[static_cast<size_t>(t)].state = State::Running;
        return b.threads[static_cast<size_t>(t)].fiber;
    }
    if (b.started < b.n) return fiber_for_new_thread(b.started);
    return host_fiber();
}

void switch_to(Fiber* next) {
    Fiber* self = g_current;
    if (next == self) return;
    if (next == host_fiber()) tsan_release(&g_block_end_sync);  // the host reads what the block did (and its report)
    g_current = next;
    switch_fiber(self, next);
    g_current = self;  // resumed
}

// The running thread waits: run something else until it is made ready and resumed.
void suspend() {
    const int t = g_thread;
    switch_to(pick_next());
    bind(t);
}

void make_ready(int t) {
    g_block.threads[static_cast<size_t>(t)].state = State::Ready;
    Block& b = g_block;
    b.ready[(b.ready_head + b.ready_count++) % kMaxThreadsPerBlock] = t;
}

// The block barrier's last participant has arrived (thread `self`), or the last
// thread it waited for has exited (self = -1): every waiting thread gets the
// result and all but `self` become ready.
void complete_barrier(int self) {
    Block& b = g_block;
    const int result = b.kind == BarrierKind::Count ? b.count
                       : b.kind == BarrierKind::And ? (b.count == b.waiting)
                       : b.kind == BarrierKind::Or  ? (b.count > 0)
                                                    : 0;
    tsan_acquire(&b.arrive_sync);
    for (int u = 0; u < b.n; ++u) {
        Thread& other = b.threads[static_cast<size_t>(u)];
        if (other.state != State::AtBarrier) continue;
        other.result = static_cast<uint64_t>(result);
        if (u == self) continue;
        tsan_release(&other.wake_sync);
        make_ready(u);
    }
    b.waiting = 0;
}

// A fiber's life: start threads while there are any, then wait as an idle fiber.
void main_loop() {
    for (;;) {
        Block& b = g_block;
        Fiber* self = g_current;
        while (!b.aborted && b.started < b.n) {
            const int t = b.started++;
            Thread& th = b.threads[static_cast<size_t>(t)];
            th.state = State::Running;
            th.fiber = self;
            bind(t);
            tsan_acquire(&g_block_start_sync);
            try {
                g_run.body(g_run.context);
            } catch (const KernelFault&) {
                break;  // recorded by fault(); the host ends the launch
            } catch (const std::exception& e) {
                record_fault(cat("the kernel threw an exception: ", e.what()), Site{nullptr, 0});
                break;
            } catch (...) {
                record_fault("the kernel threw an exception", Site{nullptr, 0});
                break;
            }
            // thread t has returned from the kernel
            th.state = State::Exited;
            ++b.exited;
            tsan_release(&g_block_end_sync);
            Warp& w = b.warps[static_cast<size_t>(t / 32)];
            if (w.arrived != 0 && (w.mask & (1u << (t % 32)))) {
                record_fault(cat("this thread exits while lanes ", hex(w.arrived), " of its warp wait for it in ", w.what, " at ",
                                 site_str(w.site), " (mask ", hex(w.mask), "): that operation can never complete (on a GPU: a hang or garbage)"),
                             Site{nullptr, 0});
                break;
            }
            if (b.waiting > 0 && b.waiting + b.exited == b.n) complete_barrier(-1);  // it waited only for exited threads
            if (kFiberPerThread || b.ready_count > 0) break;  // ready threads go first
        }
        g_thread = -1;
        if (!kFiberPerThread) pool().idle.push_back(self);
        switch_to(pick_next());
    }
}

// ---- dynamic shared memory ----

void prepare_dynamic_shared(size_t bytes) {
#ifdef ITTT_EMU_MUTANT_SHORT_DYNAMIC_SHARED
    // The mutation test's planted off-by-one (tests/cuda_emu_mutants.sh): every block gets
    // this many bytes less dynamic shared memory than its launch asked for.
    bytes = bytes > ITTT_EMU_MUTANT_SHORT_DYNAMIC_SHARED ? bytes - ITTT_EMU_MUTANT_SHORT_DYNAMIC_SHARED : 0;
#endif
#if defined(__SANITIZE_ADDRESS__)
    // Exactly `bytes`: AddressSanitizer's redzone starts where the buffer ends.
    void* p = nullptr;
    if (posix_memalign(&p, 16, bytes == 0 ? 1 : bytes) != 0) p = nullptr;
    g_run.dynamic_shared = static_cast<unsigned char*>(p);
#else
    void* p = nullptr;
    if (posix_memalign(&p, 128, bytes + kGuardBytes) != 0) p = nullptr;
    g_run.dynamic_shared = static_cast<unsigned char*>(p);
    if (p) std::memset(g_run.dynamic_shared + bytes, kCanary, kGuardBytes);
#endif
    g_run.dynamic_bytes = bytes;
}

// Non-ASan builds: a write past the end of dynamic shared memory shows in the canary.
bool dynamic_shared_overrun(size_t* first) {
#if defined(__SANITIZE_ADDRESS__)
    (void)first;
    return false;
#else
    for (size_t i = 0; i < kGuardBytes; ++i)
        if (g_run.dynamic_shared[g_run.dynamic_bytes + i] != kCanary) {
            *first = i;
            return true;
        }
    return false;
#endif
}

void poison_shared() {
    std::memset(g_run.dynamic_shared, 0xFF, g_run.dynamic_bytes);
    for (const StaticShared& s : g_run.kernel->shared) std::memset(reinterpret_cast<void*>(s.address), 0xFF, s.bytes);
}

// ---- one block ----

void reset_block(unsigned n) {
    Block& b = g_block;
    b.n = static_cast<int>(n);
    b.started = b.exited = b.waiting = b.count = 0;
    b.aborted = false;
    b.fault.clear();
    b.ready_head = b.ready_count = 0;
    for (unsigned i = 0; i < n; ++i) {
        Thread& th = b.threads[i];
        th.state = State::Unstarted;
        th.fiber = nullptr;
    }
    for (unsigned w = 0; w < (n + 31) / 32; ++w) b.warps[w].arrived = 0;
}

// Puts every fiber that was inside a thread when the block stopped back at its start.
void recover_fibers() {
    const std::vector<Fiber*> idle = pool().idle;
    for (Fiber* f : pool().all) {
        if (!kFiberPerThread && std::find(idle.begin(), idle.end(), f) != idle.end()) continue;
        reset_fiber(f);
        if (!kFiberPerThread) pool().idle.push_back(f);
    }
}

std::string deadlock_report() {
    Block& b = g_block;
    std::string out = cat("deadlock in ", where_in_launch(), ": ", b.n - b.exited, " of its ", b.n,
                          " threads wait and none can go on (every thread of a block that has not exited must reach each "
                          "__syncthreads, and every lane of a warp operation's mask must reach it)");
    // Runs of consecutive threads waiting at the same place.
    for (int t = 0; t < b.n;) {
        const Thread& th = b.threads[static_cast<size_t>(t)];
        int end = t + 1;
        auto same = [&](const Thread& o) {
            return o.state == th.state && (th.state == State::Exited || (same_site(o.site, th.site) && o.mask == th.mask));
        };
        while (end < b.n && same(b.threads[static_cast<size_t>(end)])) ++end;
        const std::string who = end - t == 1 ? cat("  ", thread_str(t)) : cat("  threads ", t, "-", end - 1, " (linear indices)");
        if (th.state == State::Exited) out += cat("\n", who, ": exited");
        else if (th.state == State::AtBarrier) out += cat("\n", who, ": wait at __syncthreads at ", site_str(th.site));
        else if (th.state == State::AtWarp)
            out += cat("\n", who, ": wait in ", th.what, " at ", site_str(th.site), " for lanes ", hex(th.mask & ~b.warps[static_cast<size_t>(t / 32)].arrived),
                       " of mask ", hex(th.mask));
        else out += cat("\n", who, ": not started or running (emulator bug)");
        t = end;
    }
    return out;
}

// Runs one block; false (and the error recorded) when it faulted or deadlocked.
bool run_block() {
    Block& b = g_block;
    reset_block(blockDim.x * blockDim.y * blockDim.z);
    if (options().poison_shared) poison_shared();
    tsan_release(&g_block_start_sync);
    g_current = host_fiber();
    g_thread = -1;
    switch_to(fiber_for_new_thread(0));
    g_thread = -1;
    tsan_acquire(&g_block_end_sync);
    std::string report;
    if (b.aborted) report = b.fault;
    else if (b.exited < b.n) report = deadlock_report();
    if (report.empty()) {
        size_t first = 0;
        if (dynamic_shared_overrun(&first)) {
            set_error(cudaErrorLaunchFailure, cat("cuda emulator: ", where_in_launch(), " wrote past the end of its ", g_run.dynamic_bytes,
                                                  " bytes of dynamic shared memory (at byte ", g_run.dynamic_bytes + first,
                                                  "): the launch's shared_bytes is too small, or an index is off"));
            print_report(cudaGetErrorString(cudaErrorLaunchFailure));
            return false;
        }
        return true;
    }
    // Threads left waiting released their work at the barrier or warp operation they wait in.
    tsan_acquire(&b.arrive_sync);
    for (Warp& w : b.warps) tsan_acquire(&w.arrive_sync);
    recover_fibers();
    set_error(cudaErrorLaunchFailure, report);
    print_report(report);
    return false;
}

bool check_config(const LaunchRequest& r, KernelInfo& k) {
    const unsigned g[3] = {r.grid.x, r.grid.y, r.grid.z}, bl[3] = {r.block.x, r.block.y, r.block.z};
    const unsigned long long threads = 1ull * r.block.x * r.block.y * r.block.z;
    std::string problem;
    for (int i = 0; i < 3 && problem.empty(); ++i) {
        if (g[i] == 0 || g[i] > kMaxGridDim[i]) problem = cat("grid ", dim_str(r.grid), ": each dimension must be 1 to (2^31 - 1, 65535, 65535)");
        else if (bl[i] == 0 || bl[i] > kMaxBlockDim[i]) problem = cat("block ", dim_str(r.block), ": each dimension must be 1 to (1024, 1024, 64)");
    }
    if (problem.empty() && threads > static_cast<unsigned long long>(kMaxThreadsPerBlock))
        problem = cat("block ", dim_str(r.block), " has ", threads, " threads, more than ", kMaxThreadsPerBlock);
    if (!problem.empty()) {
        set_error(cudaErrorInvalidConfiguration, cat("invalid configuration argument: launch of ", k.name, " at ", r.file, ":", r.line, ": ", problem));
        return false;
    }
    if (r.shared_bytes > static_cast<size_t>(k.max_dynamic_shared)) {
        set_error(cudaErrorInvalidValue,
                  cat("invalid argument: launch of ", k.name, " at ", r.file, ":", r.line, " asks for ", r.shared_bytes,
                      " bytes of dynamic shared memory; the kernel may use ", k.max_dynamic_shared,
                      " (raise it with cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes))"));
        return false;
    }
    if (r.shared_bytes + k.static_shared_bytes > kMaxSharedPerBlockOptin) {
        set_error(cudaErrorLaunchOutOfResources, cat("too many resources requested for launch: ", k.name, " needs ", k.static_shared_bytes,
                                                     " bytes of static and ", r.shared_bytes, " of dynamic shared memory, more than ",
                                                     kMaxSharedPerBlockOptin));
        return false;
    }
    if (r.stream != nullptr && !is_stream(r.stream)) {
        set_error(cudaErrorInvalidResourceHandle, cat("invalid resource handle: launch of ", k.name, " at ", r.file, ":", r.line, " on an unknown stream"));
        return false;
    }
    return true;
}

}  // namespace

// ---------------------------------------------------------------- launches

void run_grid(const LaunchRequest& request, ThreadBody body, void* context) {
    if (g_thread >= 0) fault("a kernel launched a kernel: dynamic parallelism is not emulated", Site{request.file, request.line});
    std::lock_guard<std::mutex> lock(g_launch_mutex);
    KernelInfo& kernel = kernel_info(request.kernel, request.name);
    if (!check_config(request, kernel)) return;

    g_run = Running{&request, &kernel, body, context, nullptr, 0};
    prepare_dynamic_shared(request.shared_bytes);
    if (!g_run.dynamic_shared) {
        set_error(cudaErrorMemoryAllocation, "out of memory for a block's dynamic shared memory");
        return;
    }
    gridDim = request.grid;
    blockDim = request.block;
    const unsigned n = blockDim.x * blockDim.y * blockDim.z;
    if (g_block.threads.size() < n) {  // sized once: TSan keys on their addresses, and nothing grows inside a fiber
        g_block.threads.resize(static_cast<size_t>(kMaxThreadsPerBlock));
        g_block.warps.resize(static_cast<size_t>(kMaxThreadsPerBlock / 32));
    }
    bool ok = true;
    for (unsigned z = 0; ok && z < gridDim.z; ++z)
        for (unsigned y = 0; ok && y < gridDim.y; ++y)
            for (unsigned x = 0; ok && x < gridDim.x; ++x) {
                blockIdx = {x, y, z};
                ok = run_block();
            }
    std::free(g_run.dynamic_shared);
    g_run = Running{};
}

void* dynamic_shared_memory() { return g_run.dynamic_shared; }

bool check_pointer_argument(const LaunchRequest& r, int index, const void* p) {
    if (p == nullptr || is_device_memory(p, 0)) return true;
    const KernelInfo& k = kernel_info(r.kernel, r.name);
    set_error(cudaErrorInvalidValue, cat("invalid argument: launch of ", k.name, " at ", r.file, ":", r.line, ": pointer argument ", index,
                                         " (", p, ") does not point into memory from cudaMalloc (host memory, or freed?)"));
    print_report(cudaGetErrorString(cudaErrorInvalidValue));
    return false;
}

// ---------------------------------------------------------------- inside a kernel

int lane_id() { return g_thread % 32; }

int block_barrier(BarrierKind kind, int predicate, Site site) {
    Block& b = g_block;
    const int t = g_thread;
    if (t < 0) fault("__syncthreads called outside a kernel", site);
    Thread& me = b.threads[static_cast<size_t>(t)];
    if (b.waiting == 0) {
        b.barrier_site = site;
        b.kind = kind;
        b.count = 0;
    } else if (!same_site(site, b.barrier_site) || kind != b.kind) {
        int other = 0;
        while (b.threads[static_cast<size_t>(other)].state != State::AtBarrier) ++other;
        fault(cat("this thread reaches the barrier at ", site_str(site), " while ", b.waiting, " threads (", thread_str(other),
                  " first) wait at the one at ", site_str(b.barrier_site),
                  ": threads of a block took different paths to __syncthreads (undefined on a GPU: a hang or a wrong result)"),
              site);
    }
    b.count += predicate;
    me.state = State::AtBarrier;
    me.site = site;
    ++b.waiting;
    tsan_release(&b.arrive_sync);
    if (b.waiting + b.exited == b.n) {
        complete_barrier(t);
        me.state = State::Running;
    } else {
        suspend();
        tsan_acquire(&me.wake_sync);
    }
    return static_cast<int>(me.result);
}

namespace {

// The lanes of warp w that exist (the last warp of a block may be partial).
unsigned existing_lanes(int warp) {
    const int lanes = std::min(32, g_block.n - warp * 32);
    return lanes >= 32 ? 0xffffffffu : (1u << lanes) - 1;
}

uint64_t warp_operation(unsigned mask, uint64_t value, void* data, WarpCombine combine, int src_lane, const char* what, Site site) {
    Block& b = g_block;
    const int t = g_thread;
    if (t < 0) fault(cat(what, " called outside a kernel"), site);
    const int lane = t % 32, warp = t / 32;
    Thread& me = b.threads[static_cast<size_t>(t)];
    Warp& w = b.warps[static_cast<size_t>(warp)];
    const unsigned bit = 1u << lane;
    if (!(mask & bit)) fault(cat(what, " with mask ", hex(mask), ", which does not include the calling lane ", lane), site);
    if (mask & ~existing_lanes(warp))
        fault(cat(what, " with mask ", hex(mask), " names lanes ", hex(mask & ~existing_lanes(warp)), " that do not exist (the block has ", b.n, " threads)"), site);
    for (int l = 0; l < 32; ++l)
        if ((mask >> l & 1u) && b.threads[static_cast<size_t>(warp * 32 + l)].state == State::Exited)
            fault(cat(what, " with mask ", hex(mask), " names lane ", l, ", which has exited: the operation can never complete (on a GPU: a hang or garbage)"), site);
    if (src_lane >= 0 && !(mask >> src_lane & 1u))
        fault(cat(what, " reads lane ", src_lane, ", which is not in the mask ", hex(mask), " (its value is undefined on a GPU)"), site);
    if (w.arrived == 0) {
        w.mask = mask;
        w.what = what;
        w.site = site;
    } else if (w.mask != mask || std::strcmp(w.what, what) != 0) {
        fault(cat("lanes of one warp meet in different warp operations: this lane calls ", what, " with mask ", hex(mask), " while lanes ",
                  hex(w.arrived), " wait in ", w.what, " at ", site_str(w.site), " with mask ", hex(w.mask),
                  w.mask != mask && (w.mask & mask) == 0 ? " (disjoint masks in flight at once are not emulated)" : ""),
              site);
    }
    w.value[lane] = value;
    w.data[lane] = data;
    w.arrived |= bit;
    me.state = State::AtWarp;
    me.site = site;
    me.what = what;
    me.mask = mask;
    me.src_lane = src_lane;
    tsan_release(&w.arrive_sync);
    if (w.arrived == mask) {
        tsan_acquire(&w.arrive_sync);
        if (combine) {
            void* lane_data[32];
            for (int l = 0; l < 32; ++l) lane_data[l] = (mask >> l & 1u) ? w.data[l] : nullptr;
            combine(lane_data, mask);
        }
        for (int l = 0; l < 32; ++l) {
            if (!(mask >> l & 1u)) continue;
            Thread& other = b.threads[static_cast<size_t>(warp * 32 + l)];
            other.result = other.src_lane >= 0 ? w.value[other.src_lane] : w.value[l];
            if (l == lane) continue;
            tsan_release(&other.wake_sync);
            make_ready(warp * 32 + l);
        }
        w.arrived = 0;
        me.state = State::Running;
    } else {
        suspend();
        tsan_acquire(&me.wake_sync);
    }
    return me.result;
}

}  // namespace

uint64_t warp_shuffle(unsigned mask, uint64_t value, int src_lane, const char* what, Site site) {
    return warp_operation(mask, value, nullptr, nullptr, src_lane, what, site);
}

void warp_collective(unsigned mask, void* lane_data, WarpCombine combine, const char* what, Site site) {
    warp_operation(mask, 0, lane_data, combine, -1, what, site);
}

void fault(const std::string& message, Site site) {
    if (g_thread < 0 || g_run.request == nullptr) {
        print_report(cat("cuda emulator: ", message, site.file ? cat(" at ", site_str(site)) : std::string(), " (outside any kernel thread)"));
        std::abort();
    }
    record_fault(message, site);
    throw KernelFault{};
}

namespace {
struct DroppedBarriers {
    std::mutex mutex;
    std::vector<std::pair<std::string, long long>> counts;
    ~DroppedBarriers() {
        for (const auto& c : counts) std::fprintf(stderr, "cuda emulator mutant: the __syncthreads at %s was dropped %lld times\n", c.first.c_str(), c.second);
    }
};
DroppedBarriers g_dropped;
}  // namespace

void count_dropped_barrier(const char* file, int line) {
    std::lock_guard<std::mutex> lock(g_dropped.mutex);
    const std::string key = cat(file, ":", line);
    for (auto& c : g_dropped.counts)
        if (c.first == key) return void(++c.second);
    g_dropped.counts.push_back({key, 1});
}

}  // namespace ittt::cuda_emu
