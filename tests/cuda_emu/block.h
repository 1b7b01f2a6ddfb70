// One block in flight: its fibers, barriers, warp exchanges, shared memory and schedules.
// Part of the CUDA emulation; included through cuda_emu.h only.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "context.h"

namespace cuda_emu {

constexpr unsigned kWarp = 32;
constexpr size_t kMaxDynamicSmem = 48 * 1024;
constexpr size_t kGuardBytes = 64;
constexpr size_t kStackBytes = 256 * 1024;

struct Barrier {
  unsigned expected = 0, arrived = 0;
};

enum class FiberState { Runnable, Waiting, Done };

struct Fiber {
  Context ctx;
  FiberState state = FiberState::Runnable;
  Barrier* waiting = nullptr;
  int phase = 0;  // which half of the warp's exchange buffer its next collective uses
  char* stack = nullptr;
};

// Fiber stacks, mapped once and reused by every block (untouched pages stay unbacked), each
// above an inaccessible page: a stack overflow faults instead of corrupting its neighbour.
inline char* fiber_stack(unsigned t) {
  static std::vector<char*> pool;
  while (pool.size() <= t) {
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    void* p = mmap(nullptr, kStackBytes + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED || mprotect(p, page, PROT_NONE) != 0) throw std::runtime_error("cuda_emu: no fiber stack");
    pool.push_back(static_cast<char*>(p) + page);
  }
  return pool[t];
}

// One block in flight.
struct Block {
  std::vector<Fiber> fibers;
  Context scheduler;
  unsigned current = 0;
  Barrier block_barrier;
  std::vector<Barrier> warp_barriers;
  std::vector<uint64_t> exchange;  // [warp][2][32] slots for shuffles and ballots
  std::vector<const char*> exchange_kind;  // the collective each slot's lane is in
  std::vector<unsigned char> dynamic_smem;
  size_t dynamic_bytes = 0;
  std::set<const void*> poisoned;  // static __shared__ variables filled in this block
  std::function<void()> body;
  std::string error;
};

inline Block*& current_block() {
  static Block* b = nullptr;
  return b;
}

inline void fail(const std::string& what) { throw std::runtime_error("cuda_emu: " + what); }

inline void fiber_main() {
  Block& b = *current_block();
  try {
    b.body();
  } catch (const std::exception& e) {
    if (b.error.empty()) b.error = std::string("exception in thread ") + std::to_string(b.current) + ": " + e.what();
  } catch (...) {  // nothing may unwind past a fiber's first frame
    if (b.error.empty()) b.error = "unknown exception in thread " + std::to_string(b.current);
  }
  b.fibers[b.current].state = FiberState::Done;
  context_switch(b.fibers[b.current].ctx, b.scheduler);  // never resumed
}

// Waits until `expected` fibers have arrived at `bar`.
inline void arrive_and_wait(Barrier& bar) {
  Block& b = *current_block();
  if (++bar.arrived == bar.expected) {
    bar.arrived = 0;
    for (Fiber& f : b.fibers) {
      if (f.state == FiberState::Waiting && f.waiting == &bar) {
        f.state = FiberState::Runnable;
        f.waiting = nullptr;
      }
    }
    return;
  }
  Fiber& self = b.fibers[b.current];
  self.state = FiberState::Waiting;
  self.waiting = &bar;
  context_switch(self.ctx, b.scheduler);
}

inline unsigned lanes_in_warp(const Block& b, unsigned warp) {
  const unsigned n = static_cast<unsigned>(b.fibers.size());
  return std::min(kWarp, n - warp * kWarp);
}

inline void check_full_mask(unsigned mask, const char* what) {
  Block& b = *current_block();
  const unsigned lanes = lanes_in_warp(b, b.current / kWarp);
  const unsigned full = lanes == 32 ? 0xffffffffu : ((1u << lanes) - 1u);
  if (mask != full) {
    std::ostringstream s;
    s << what << " with mask 0x" << std::hex << mask << " in a warp of " << std::dec << lanes
      << " lanes (only full-warp masks are modelled)";
    fail(s.str());
  }
}

// Every lane publishes `bits`, waits for its warp, and gets the warp's exchange row. All
// lanes must be in the same collective (`kind`: its name); lanes missing from a partial
// warp read as 0xFF bytes.
inline const uint64_t* warp_exchange(const char* kind, uint64_t bits) {
  Block& b = *current_block();
  const unsigned t = b.current, warp = t / kWarp, lane = t % kWarp;
  Fiber& self = b.fibers[t];
  const size_t row = (warp * 2 + self.phase) * kWarp;
  self.phase ^= 1;  // the next collective writes the other half: a lane still reading this
                    // one holds back the barrier the half after that needs
  b.exchange[row + lane] = bits;
  b.exchange_kind[row + lane] = kind;
  arrive_and_wait(b.warp_barriers[warp]);
  for (unsigned l = 0, lanes = lanes_in_warp(b, warp); l < lanes; ++l) {
    if (b.exchange_kind[row + l] != kind && std::strcmp(b.exchange_kind[row + l], kind) != 0)
      fail(std::string("lane ") + std::to_string(lane) + " of warp " + std::to_string(warp) + " is in " + kind +
           " while lane " + std::to_string(l) + " is in " + b.exchange_kind[row + l]);
  }
  return &b.exchange[row];
}

template <typename T>
uint64_t to_bits(T v) {
  static_assert(sizeof(T) <= sizeof(uint64_t) && std::is_trivially_copyable_v<T>, "shuffle of a large type");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  return bits;
}

template <typename T>
T from_bits(uint64_t bits) {
  T v;
  std::memcpy(&v, &bits, sizeof(T));
  return v;
}

// Whether the kGuardBytes after `end` still hold the 0xFF they were filled with.
inline bool guard_intact(const unsigned char* end) {
  return std::all_of(end, end + kGuardBytes, [](unsigned char c) { return c == 0xFF; });
}

// The dynamic shared memory of the running block (extern __shared__ arrays).
inline unsigned char* dynamic_smem() { return current_block()->dynamic_smem.data(); }

// Fills a static __shared__ variable with 0xFF once per block, before any thread uses it.
inline void poison_static_shared(void* p, size_t bytes) {
  Block& b = *current_block();
  if (b.poisoned.insert(p).second) std::memset(p, 0xFF, bytes);
}

// Each block runs under one of three schedules, in turn over blocks and launches (or the
// one CUDA_EMU_SCHEDULE names: lockstep, ascending, descending): every runnable thread in
// index order (warps in near lockstep), or one warp at a time, as far as it can go, lowest
// warp and lane first or highest first. All are schedules a GPU may pick, so a correct
// kernel gives the same results under each; a missing __syncthreads between warps, or
// __syncwarp between lanes, that write and read shared memory shows under one of them.
enum class Order { Lockstep, WarpsAscending, WarpsDescending };

inline const char* order_name(Order o) {
  return o == Order::Lockstep ? "lockstep" : o == Order::WarpsAscending ? "ascending" : "descending";
}

inline Order next_order() {
  static const int pinned = [] {
    const char* v = std::getenv("CUDA_EMU_SCHEDULE");
    if (v == nullptr || *v == '\0') return -1;
    for (int o = 0; o < 3; ++o)
      if (std::strcmp(v, order_name(static_cast<Order>(o))) == 0) return o;
    fail(std::string("CUDA_EMU_SCHEDULE must be lockstep, ascending or descending, got ") + v);
    return -1;
  }();
  static unsigned counter = 0;
  return static_cast<Order>(pinned >= 0 ? pinned : static_cast<int>(counter++ % 3));
}

inline std::string block_name(uint3 i) {
  return "(" + std::to_string(i.x) + ", " + std::to_string(i.y) + ", " + std::to_string(i.z) + ")";
}

// Runs one block of the launch prepared in b, from its first instruction to its last thread's exit.
inline void run_block(Block& b, const std::string& name, uint3 block_idx) {
  blockIdx = block_idx;
  b.dynamic_smem.assign(b.dynamic_bytes + kGuardBytes, 0xFF);
  b.poisoned.clear();
  std::fill(b.exchange.begin(), b.exchange.end(), ~uint64_t(0));
  std::fill(b.exchange_kind.begin(), b.exchange_kind.end(), "");
  b.block_barrier.arrived = 0;
  for (Barrier& w : b.warp_barriers) w.arrived = 0;
  for (Fiber& f : b.fibers) {
    f.state = FiberState::Runnable;
    f.waiting = nullptr;
    f.phase = 0;
    context_start(f.ctx, f.stack, kStackBytes, fiber_main);
  }
  const unsigned n = static_cast<unsigned>(b.fibers.size());
  const unsigned warps = (n + kWarp - 1) / kWarp;
  const Order order = next_order();
  const std::string where = name + " block " + block_name(block_idx) + " (schedule " + order_name(order) + ")";
  auto resume = [&](unsigned t) {
    b.current = t;
    threadIdx = uint3{t, 0, 0};
    context_switch(b.scheduler, b.fibers[t].ctx);
    if (!b.error.empty()) fail(where + ": " + b.error);
  };
  for (;;) {
    bool ran = false, all_done = true;
    if (order == Order::Lockstep) {
      for (unsigned t = 0; t < n; ++t) {
        if (b.fibers[t].state != FiberState::Runnable) continue;
        ran = true;
        resume(t);
      }
    } else {  // the first warp (in this order) that can run runs until all its lanes wait
      for (unsigned i = 0; i < warps && !ran; ++i) {
        const bool up = order == Order::WarpsAscending;
        const unsigned w = up ? i : warps - 1 - i, lanes = lanes_in_warp(b, w);
        for (bool again = true; again;) {
          again = false;
          for (unsigned l = 0; l < lanes; ++l) {
            const unsigned t = w * kWarp + (up ? l : lanes - 1 - l);
            if (b.fibers[t].state != FiberState::Runnable) continue;
            ran = again = true;
            resume(t);
          }
        }
      }
    }
    unsigned waiting_block = 0, waiting_warp = 0, done = 0;
    for (const Fiber& f : b.fibers) {
      if (f.state != FiberState::Done) all_done = false;
      if (f.state == FiberState::Done) ++done;
      if (f.state == FiberState::Waiting) (f.waiting == &b.block_barrier ? waiting_block : waiting_warp) += 1;
    }
    if (all_done) break;
    if (!ran) {
      fail(where + ": deadlock: " + std::to_string(waiting_block) +
           " threads wait at __syncthreads and " + std::to_string(waiting_warp) +
           " at a warp collective, while " + std::to_string(done) + " have exited");
    }
  }
  if (!guard_intact(b.dynamic_smem.data() + b.dynamic_bytes)) fail(where + " wrote past its dynamic shared memory");
}

}  // namespace cuda_emu
