// Switching between fibers: every emulated thread runs on a stack of its own.
// Part of the CUDA emulation; included through cuda_emu.h only.
#pragma once

#include <ucontext.h>

#include <cstddef>
#include <cstdint>

namespace cuda_emu {

// A fiber's saved execution state. On x86-64 a switch is a dozen instructions that save
// the callee-saved registers and swap stacks; elsewhere (or with CUDA_EMU_UCONTEXT) it is
// ucontext's swapcontext, which also makes a system call per switch for the signal mask.
#if defined(__x86_64__) && !defined(CUDA_EMU_UCONTEXT)
struct Context {
  void* sp = nullptr;
};

// Saves rbp, rbx, r12-r15 on the current stack, stores its pointer in *save_sp, and resumes
// the stack next_sp (a stack this function saved, or one context_start prepared).
__attribute__((naked, noinline)) inline void switch_stack(void** /*save_sp*/, void* /*next_sp*/) {
  asm volatile(
      "pushq %rbp\n\tpushq %rbx\n\tpushq %r12\n\tpushq %r13\n\tpushq %r14\n\tpushq %r15\n\t"
      "movq %rsp, (%rdi)\n\tmovq %rsi, %rsp\n\t"
      "popq %r15\n\tpopq %r14\n\tpopq %r13\n\tpopq %r12\n\tpopq %rbx\n\tpopq %rbp\n\t"
      "ret");
}

inline void context_switch(Context& from, Context& to) { switch_stack(&from.sp, to.sp); }

// A stack whose first switch enters `entry` (which must never return) as if called.
inline void context_start(Context& c, char* stack, size_t bytes, void (*entry)()) {
  void** sp = reinterpret_cast<void**>((reinterpret_cast<uintptr_t>(stack) + bytes) & ~uintptr_t(15));
  *--sp = nullptr;                          // entry's own return address: never used
  *--sp = reinterpret_cast<void*>(entry);   // where switch_stack's ret goes
  for (int i = 0; i < 6; ++i) *--sp = nullptr;  // the six registers it pops first
  c.sp = sp;
}
#else
struct Context {
  ucontext_t uc;
};

inline void context_switch(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }

inline void context_start(Context& c, char* stack, size_t bytes, void (*entry)()) {
  static ucontext_t blank = [] {  // one getcontext (a system call) for every fiber
    ucontext_t u;
    getcontext(&u);
    return u;
  }();
  c.uc = blank;
  c.uc.uc_stack.ss_sp = stack;
  c.uc.uc_stack.ss_size = bytes;
  c.uc.uc_link = nullptr;
  makecontext(&c.uc, entry, 0);
}
#endif

}  // namespace cuda_emu
