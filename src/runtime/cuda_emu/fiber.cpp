// fiber.cpp (CUDA emulator): stacks, the context switch, and the sanitizers' fiber hooks.
#include "fiber.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

#if !defined(__x86_64__) || defined(ITTT_EMU_UCONTEXT)
#define ITTT_EMU_USE_UCONTEXT 1
#include <ucontext.h>
#endif

#if defined(__SANITIZE_ADDRESS__)
#define ITTT_EMU_ASAN 1
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
// emulator.cpp and this file are compiled without ThreadSanitizer's instrumentation in
// the TSan build (their bookkeeping is ordered by construction), which then defines ITTT_EMU_TSAN.
#if defined(ITTT_EMU_TSAN)
#include <sanitizer/tsan_interface.h>
#endif

namespace ittt::cuda_emu {

struct Fiber {
#if defined(ITTT_EMU_USE_UCONTEXT)
    ucontext_t context;
#else
    void* sp = nullptr;  // the saved stack pointer; the registers sit on the stack below it
#endif
    void (*entry)() = nullptr;
    char* mapping = nullptr;  // the stack, with a guard page at its low end
    size_t mapping_bytes = 0;
    void* tsan = nullptr;
    void* asan_fake_stack = nullptr;
    const void* stack_bottom = nullptr;  // the usable stack, as the sanitizers want it
    size_t stack_bytes = 0;
};

namespace {

// Kernels keep small arrays on the stack; the sanitizers' frames and the fault path
// (formatting a report) need more. Only touched pages are ever backed by memory.
#if defined(ITTT_EMU_ASAN) || defined(ITTT_EMU_TSAN)
constexpr size_t kStackBytes = 1 << 20;
#else
constexpr size_t kStackBytes = 256 << 10;
#endif

Fiber* g_switching_from = nullptr;  // the fiber that made the switch now arriving
Fiber* g_starting = nullptr;        // the fiber whose entry runs next

[[noreturn]] void die(const char* what) {
    std::fprintf(stderr, "cuda emulator: %s\n", what);
    std::abort();
}

#if !defined(ITTT_EMU_USE_UCONTEXT)
// ittt_emu_switch_context(&from->sp, to->sp): pushes the callee-saved registers and
// the SSE/x87 control words on the current stack, stores the stack pointer, loads
// the other one and pops the same set from it. `ret` then continues `to`.
extern "C" void ittt_emu_switch_context(void** save_sp, void* load_sp);
asm(R"(
    .pushsection .text
    .globl ittt_emu_switch_context
    .type ittt_emu_switch_context, @function
    .p2align 4
ittt_emu_switch_context:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size ittt_emu_switch_context, .-ittt_emu_switch_context
    .popsection
)");
#endif

// Where every fiber starts: the sanitizers learn the switch is complete, then the entry.
void trampoline() {
    Fiber* self = g_starting;
    fiber_entered();
    self->entry();
    die("a fiber's entry function returned");
}

// A fresh stack whose first switch lands in trampoline().
void prepare(Fiber* f) {
    f->stack_bottom = f->mapping + getpagesize();
    f->stack_bytes = f->mapping_bytes - static_cast<size_t>(getpagesize());
#if defined(ITTT_EMU_USE_UCONTEXT)
    if (getcontext(&f->context) != 0) die("getcontext failed");
    f->context.uc_stack.ss_sp = const_cast<void*>(f->stack_bottom);
    f->context.uc_stack.ss_size = f->stack_bytes;
    f->context.uc_link = nullptr;
    makecontext(&f->context, trampoline, 0);
#else
    // The frame ittt_emu_switch_context pops: control words, six registers, then the
    // return address (trampoline), above which a null "return address" makes the
    // stack look as if trampoline had been called (rsp = 8 mod 16 at its entry).
    auto top = reinterpret_cast<uintptr_t>(f->mapping + f->mapping_bytes) & ~uintptr_t(15);
    void** sp = reinterpret_cast<void**>(top);
    *--sp = nullptr;
    *--sp = reinterpret_cast<void*>(&trampoline);
    for (int i = 0; i < 6; ++i) *--sp = nullptr;  // rbp (0 ends frame-pointer walks), rbx, r12-r15
    uint32_t control[2] = {0, 0};
    asm volatile("stmxcsr %0" : "=m"(control[0]));
    asm volatile("fnstcw %0" : "=m"(control[1]));
    *--sp = reinterpret_cast<void*>(static_cast<uintptr_t>(control[0]) | (static_cast<uintptr_t>(control[1] & 0xffff) << 32));
    f->sp = sp;
#endif
}

}  // namespace

Fiber* host_fiber() {
    static Fiber* host = [] {
        Fiber* f = new Fiber;
#if defined(ITTT_EMU_TSAN)
        f->tsan = __tsan_get_current_fiber();
#endif
        return f;
    }();
    return host;
}

Fiber* create_fiber(void (*entry)(), const char* name) {
    Fiber* f = new Fiber;
    f->entry = entry;
    f->mapping_bytes = kStackBytes + static_cast<size_t>(getpagesize());
    void* m = mmap(nullptr, f->mapping_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (m == MAP_FAILED) die("out of memory for a fiber stack");
    f->mapping = static_cast<char*>(m);
    mprotect(f->mapping, static_cast<size_t>(getpagesize()), PROT_NONE);  // overflow faults instead of corrupting
#if defined(ITTT_EMU_TSAN)
    f->tsan = __tsan_create_fiber(0);
    __tsan_set_fiber_name(f->tsan, name);
#else
    (void)name;
#endif
    prepare(f);
    return f;
}

void reset_fiber(Fiber* f) {
#if defined(ITTT_EMU_ASAN)
    // Frames that never returned leave their redzones poisoned.
    __asan_unpoison_memory_region(f->stack_bottom, f->stack_bytes);
    f->asan_fake_stack = nullptr;
#endif
#if defined(ITTT_EMU_TSAN)
    // Its shadow call stack still holds the abandoned frames: start a new TSan fiber.
    __tsan_destroy_fiber(f->tsan);
    f->tsan = __tsan_create_fiber(0);
    __tsan_set_fiber_name(f->tsan, "CUDA thread (restarted after a fault)");
#endif
    prepare(f);
}

void switch_fiber(Fiber* from, Fiber* to) {
    if (to->entry != nullptr) g_starting = to;  // used only if `to` is fresh
    g_switching_from = from;
#if defined(ITTT_EMU_ASAN)
    __sanitizer_start_switch_fiber(&from->asan_fake_stack, to->stack_bottom, to->stack_bytes);
#endif
#if defined(ITTT_EMU_TSAN)
    __tsan_switch_to_fiber(to->tsan, __tsan_switch_to_fiber_no_sync);
#endif
#if defined(ITTT_EMU_USE_UCONTEXT)
    if (swapcontext(&from->context, &to->context) != 0) die("swapcontext failed");
#else
    ittt_emu_switch_context(&from->sp, to->sp);
#endif
    // Resumed: some fiber switched back to `from`.
#if defined(ITTT_EMU_ASAN)
    Fiber* previous = g_switching_from;
    __sanitizer_finish_switch_fiber(from->asan_fake_stack, &previous->stack_bottom, &previous->stack_bytes);
#endif
}

void fiber_entered() {
#if defined(ITTT_EMU_ASAN)
    // Also how the host fiber's stack bounds become known: it switched here first.
    Fiber* previous = g_switching_from;
    __sanitizer_finish_switch_fiber(nullptr, &previous->stack_bottom, &previous->stack_bytes);
#endif
}

}  // namespace ittt::cuda_emu
