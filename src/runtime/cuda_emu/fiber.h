// fiber.h (CUDA emulator): user-space threads for the CUDA threads of a block.
//
// A fiber is a stack and a saved register set. switch_fiber(from, to) saves the
// callee-saved registers of `from` and resumes `to` where it last switched away:
// about 20 instructions on x86-64 (fiber.cpp), ucontext elsewhere. The sanitizers
// are told about every switch: AddressSanitizer (which stack is live) and
// ThreadSanitizer (which fiber runs; switches carry no synchronisation, so that
// only the emulator's barriers order the CUDA threads, as on a GPU).
#pragma once
#include <cstddef>

namespace ittt::cuda_emu {

struct Fiber;

// The calling host thread as a fiber: where a launch starts and where the
// scheduler returns when no CUDA thread can run.
Fiber* host_fiber();

// A new fiber that will run entry() when first switched to; entry never returns.
// `name` labels it in ThreadSanitizer reports.
Fiber* create_fiber(void (*entry)(), const char* name);

// Puts a fiber whose run was abandoned (a fault, a deadlock) back at the start of
// entry(), with a clean stack.
void reset_fiber(Fiber* fiber);

void switch_fiber(Fiber* from, Fiber* to);

// The first call in every fiber's entry function (sanitizer bookkeeping).
void fiber_entered();

}  // namespace ittt::cuda_emu
