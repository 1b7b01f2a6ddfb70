// A CUDA execution model on the CPU, for running posefast's .cu kernels without a GPU.
//
// tests/cuda_emu/translate.py rewrites each csrc/cuda/*.cu into C++ that includes this
// header: kernel launches become cuda_emu::Launch(...).run(...), __shared__ variables become
// statics (or, extern ones, this block's dynamic buffer), c10::cuda calls become the stand-ins
// below. Each block runs as blockDim cooperative fibers (Context) on the calling thread,
// one block after another; a fiber runs until it reaches __syncthreads or a warp collective
// (shuffle, ballot, __syncwarp), where it waits for the others of its block or warp.
//
// What it checks, by throwing std::runtime_error from the launch (so the op call fails):
//   - a barrier that can never complete: __syncthreads with exited threads, a warp
//     collective with missing lanes, or a mask that is not the full warp;
//   - lanes of one warp in different collectives at once (a ballot against a shuffle);
//   - launch limits: block size > 1024, gridDim.y/z > 65535, dynamic shared memory over
//     the 48 KiB a kernel gets without opting in;
//   - writes past the end of a tensor the launcher allocated (guarded_empty) or of the
//     dynamic shared memory (both end in guard bytes checked after every block/launch).
// Shared memory, launcher-allocated tensors and the shuffle slots of lanes a partial warp
// lacks start as 0xFF bytes (NaN for floating types), so a read of something never written
// shows up in the results. Each block runs under one of three thread schedules (Order), so a
// missing barrier between the writer and the reader of shared memory shows up too. A fiber
// that overflows its stack hits a guard page.
// Device-only code (#if defined(__CUDA_ARCH__) in posefast's sources) is compiled, with the
// GPU intrinsics it uses modelled below: ex2.approx.ftz / rcp.approx.ftz give the exact
// result moved by up to their documented error (2 and 1 ulp, in a direction that depends
// on the input) with subnormals flushed to zero; the other math functions are the host's.
// nvcc's default contraction of a * b + c into fused multiply-adds is modelled only when
// built with CUDA_EMU_CFLAGS="-O2 -mfma -ffp-contract=fast" (build.py; a CPU with FMA), and
// then by the host compiler's choice of which to fuse. Host code in the .cu files (the
// launchers) sees the device branches too. Not modelled: __launch_bounds__ (the launch's
// block size is not checked against it), races the three schedules do not order
// differently, timing.
#pragma once

#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

struct uint3 {
  unsigned x, y, z;
};

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

// The running fiber's coordinates (set by the scheduler before it resumes a fiber).
inline uint3 threadIdx{0, 0, 0};
inline uint3 blockIdx{0, 0, 0};
inline dim3 blockDim;
inline dim3 gridDim;

// translate.py turns __CUDA_ARCH__ in posefast's sources into this
#define CUDA_EMU_DEVICE_CODE 1

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)

namespace cuda_emu {

constexpr unsigned kWarp = 32;
constexpr size_t kMaxDynamicSmem = 48 * 1024;
constexpr size_t kGuardBytes = 64;
constexpr size_t kStackBytes = 256 * 1024;

struct Barrier {
  unsigned expected = 0, arrived = 0;
};

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
  for (unsigned l = 0; l < lanes_in_warp(b, warp); ++l) {
    if (std::strcmp(b.exchange_kind[row + l], kind) != 0)
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

// The dynamic shared memory of the running block (extern __shared__ arrays).
inline unsigned char* dynamic_smem() { return current_block()->dynamic_smem.data(); }

// Fills a static __shared__ variable with 0xFF once per block, before any thread uses it.
inline void poison_static_shared(void* p, size_t bytes) {
  Block& b = *current_block();
  if (b.poisoned.insert(p).second) std::memset(p, 0xFF, bytes);
}

// ------------------------------------------------------------------ host-side stand-ins
struct Stream {};
inline Stream current_stream() { return {}; }

struct DeviceGuard {
  explicit DeviceGuard(const c10::Device& d) {
    if (!d.is_cpu()) fail("the emulated kernels take CPU tensors, got one on " + d.str());
  }
};

inline void launch_check() {}

// Tensors the launchers allocate: 0xFF-filled and followed by guard bytes, checked after
// every launch.
inline std::vector<std::pair<c10::Storage, size_t>>& guarded_tensors() {
  static std::vector<std::pair<c10::Storage, size_t>> v;
  return v;
}

inline at::Tensor guarded_empty(at::IntArrayRef sizes, const at::TensorOptions& opts) {
  int64_t numel = 1;
  for (const int64_t v : sizes) numel *= v;
  const size_t bytes = static_cast<size_t>(numel) * c10::elementSize(c10::typeMetaToScalarType(opts.dtype()));
  const at::Tensor raw = at::empty({static_cast<int64_t>(bytes + kGuardBytes)}, opts.dtype(at::kByte));
  std::memset(raw.data_ptr(), 0xFF, bytes + kGuardBytes);
  std::vector<int64_t> strides(sizes.size());
  int64_t stride = 1;
  for (size_t d = sizes.size(); d-- > 0;) {
    strides[d] = stride;
    stride *= std::max<int64_t>(sizes[d], 1);
  }
  at::Tensor t = at::empty({0}, opts);
  t.set_(raw.storage(), 0, sizes, strides);  // not a view: a tensor of its own on raw's storage
  auto& all = guarded_tensors();
  all.erase(std::remove_if(all.begin(), all.end(), [](const auto& g) { return g.first.use_count() == 1; }),
            all.end());
  all.emplace_back(raw.storage(), bytes);
  return t;
}

inline at::Tensor guarded_empty(at::IntArrayRef sizes, at::ScalarType dtype) {
  return guarded_empty(sizes, at::TensorOptions().dtype(dtype));
}

inline at::Tensor guarded_empty_like(const at::Tensor& t) {
  TORCH_CHECK(t.is_contiguous(), "cuda_emu: guarded_empty_like of a non-contiguous tensor");
  return guarded_empty(t.sizes(), t.options());
}

inline at::Tensor guarded_zeros(at::IntArrayRef sizes, const at::TensorOptions& opts) {
  return guarded_empty(sizes, opts).zero_();
}

inline void check_guards(const std::string& kernel) {
  for (const auto& [buf, bytes] : guarded_tensors()) {
    const auto* p = static_cast<const unsigned char*>(buf.data()) + bytes;
    for (size_t i = 0; i < kGuardBytes; ++i) {
      if (p[i] != 0xFF) fail(kernel + " wrote past the end of a tensor of " + std::to_string(bytes) + " bytes");
    }
  }
}

// Every launch, in order, as (grid x, y, z, block x, y, z, dynamic shared bytes), for tests.
inline std::vector<int64_t>& launch_log() {
  static std::vector<int64_t> log;
  return log;
}

// ------------------------------------------------------------------ the launch
struct Launch {
  dim3 grid, block;
  size_t smem;

  Launch(dim3 g, dim3 b, size_t s = 0, Stream = {}) : grid(g), block(b), smem(s) {}

  template <typename... P, typename... A>
  void run(const char* name, void (*kernel)(P...), A&&... args) {
    static std::mutex one_at_a_time;  // the emulation's state is global
    const std::lock_guard<std::mutex> lock(one_at_a_time);
    const unsigned threads = block.x * block.y * block.z;
    const std::string where = std::string(name);
    if (threads == 0 || threads > 1024) fail(where + ": block of " + std::to_string(threads) + " threads");
    if (block.y != 1 || block.z != 1) fail(where + ": only 1-D blocks are modelled");
    if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535)
      fail(where + ": grid (" + std::to_string(grid.x) + ", " + std::to_string(grid.y) + ", " +
           std::to_string(grid.z) + ") is not launchable");
    if (smem > kMaxDynamicSmem) fail(where + ": " + std::to_string(smem) + " bytes of dynamic shared memory");
    for (const int64_t v : {grid.x, grid.y, grid.z, block.x, block.y, block.z}) launch_log().push_back(v);
    launch_log().push_back(static_cast<int64_t>(smem));

    const std::tuple<std::decay_t<A>...> saved(std::forward<A>(args)...);
    Block b;
    b.body = [&] { std::apply([&](const auto&... a) { kernel(a...); }, saved); };
    b.fibers.resize(threads);
    for (unsigned t = 0; t < threads; ++t) b.fibers[t].stack = fiber_stack(t);
    const unsigned warps = (threads + kWarp - 1) / kWarp;
    b.warp_barriers.resize(warps);
    for (unsigned w = 0; w < warps; ++w) b.warp_barriers[w].expected = lanes_in_warp(b, w);
    b.block_barrier.expected = threads;
    b.exchange.resize(static_cast<size_t>(warps) * 2 * kWarp);
    b.exchange_kind.resize(b.exchange.size());
    b.dynamic_bytes = smem;

    Block* outer = current_block();
    current_block() = &b;
    blockDim = block;
    gridDim = grid;
    try {
      for (unsigned z = 0; z < grid.z; ++z)
        for (unsigned y = 0; y < grid.y; ++y)
          for (unsigned x = 0; x < grid.x; ++x) run_block(b, where, uint3{x, y, z});
    } catch (...) {
      current_block() = outer;
      throw;
    }
    current_block() = outer;
    check_guards(where);
  }

 private:
  static void run_block(Block& b, const std::string& name, uint3 block_idx) {
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
    const unsigned char* guard = b.dynamic_smem.data() + b.dynamic_bytes;
    for (size_t i = 0; i < kGuardBytes; ++i)
      if (guard[i] != 0xFF) fail(where + " wrote past its dynamic shared memory");
  }

  // Each block runs under one of three schedules, in turn over blocks and launches (or the
  // one CUDA_EMU_SCHEDULE names: lockstep, ascending, descending): every runnable thread in
  // index order (warps in near lockstep), or one warp at a time, as far as it can go, lowest
  // warp and lane first or highest first. All are schedules a GPU may pick, so a correct
  // kernel gives the same results under each; a missing __syncthreads between warps, or
  // __syncwarp between lanes, that write and read shared memory shows under one of them.
  enum class Order { Lockstep, WarpsAscending, WarpsDescending };

  static const char* order_name(Order o) {
    return o == Order::Lockstep ? "lockstep" : o == Order::WarpsAscending ? "ascending" : "descending";
  }

  static Order next_order() {
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

  static std::string block_name(uint3 i) {
    return "(" + std::to_string(i.x) + ", " + std::to_string(i.y) + ", " + std::to_string(i.z) + ")";
  }
};

}  // namespace cuda_emu

// ------------------------------------------------------------------ device intrinsics
inline void __syncthreads() { cuda_emu::arrive_and_wait(cuda_emu::current_block()->block_barrier); }

inline void __syncwarp(unsigned mask = 0xffffffffu) {
  cuda_emu::check_full_mask(mask, "__syncwarp");
  cuda_emu::warp_exchange("__syncwarp", 0);
}

template <typename T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  cuda_emu::check_full_mask(mask, "__shfl_down_sync");
  if (width != 32) cuda_emu::fail("__shfl_down_sync with width != 32 is not modelled");
  const uint64_t* row = cuda_emu::warp_exchange("__shfl_down_sync", cuda_emu::to_bits(v));
  const unsigned lane = cuda_emu::current_block()->current % cuda_emu::kWarp;
  return lane + delta < cuda_emu::kWarp ? cuda_emu::from_bits<T>(row[lane + delta]) : v;
}

template <typename T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  cuda_emu::check_full_mask(mask, "__shfl_xor_sync");
  if (width != 32) cuda_emu::fail("__shfl_xor_sync with width != 32 is not modelled");
  const uint64_t* row = cuda_emu::warp_exchange("__shfl_xor_sync", cuda_emu::to_bits(v));
  const unsigned lane = cuda_emu::current_block()->current % cuda_emu::kWarp;
  return cuda_emu::from_bits<T>(row[(lane ^ static_cast<unsigned>(lane_mask)) % cuda_emu::kWarp]);
}

inline unsigned __ballot_sync(unsigned mask, int predicate) {
  cuda_emu::check_full_mask(mask, "__ballot_sync");
  const uint64_t* row = cuda_emu::warp_exchange("__ballot_sync", predicate != 0 ? 1 : 0);
  cuda_emu::Block& b = *cuda_emu::current_block();
  const unsigned lanes = cuda_emu::lanes_in_warp(b, b.current / cuda_emu::kWarp);
  unsigned out = 0;
  for (unsigned l = 0; l < lanes; ++l) out |= static_cast<unsigned>(row[l] & 1u) << l;
  return out;
}

// The device math that pose_math.h's device branches call unqualified.
using std::exp;
using std::exp2;
using std::fmax;
using std::isfinite;
using std::log;
using std::log1p;
using std::sqrt;

inline int __float_as_int(float v) { return cuda_emu::from_bits<int>(cuda_emu::to_bits(v)); }
inline float __uint_as_float(unsigned v) { return cuda_emu::from_bits<float>(cuda_emu::to_bits(v)); }
// Never fused into a multiply-add, as on a GPU, even when built with -ffp-contract=fast.
__attribute__((noinline)) inline float __fadd_rn(float a, float b) { return a + b; }
__attribute__((noinline)) inline float __fmul_rn(float a, float b) { return a * b; }
__attribute__((noinline)) inline double __dadd_rn(double a, double b) { return a + b; }
__attribute__((noinline)) inline double __dmul_rn(double a, double b) { return a * b; }

namespace cuda_emu {

inline float flush_subnormal(float v) { return std::fpclassify(v) == FP_SUBNORMAL ? std::copysign(0.0f, v) : v; }

// v moved by k ulps (k in [-max_ulps, max_ulps], from the bits of `seed`); inf and NaN stay.
inline float nudge_ulps(float v, float seed, int max_ulps) {
  if (!std::isfinite(v) || v == 0.0f) return v;
  uint32_t h = static_cast<uint32_t>(to_bits(seed)) * 2654435761u;
  const int k = static_cast<int>((h >> 16) % static_cast<uint32_t>(2 * max_ulps + 1)) - max_ulps;
  const float away = std::copysign(HUGE_VALF, v);  // k > 0: larger in magnitude
  for (int i = 0; i < (k < 0 ? -k : k); ++i) v = std::nextafter(v, k < 0 ? 0.0f : away);
  return v;
}

// ex2.approx.ftz.f32: relative error within 2^-22 (about 2 ulp), subnormal input and output
// flushed to zero; 2^0 is exactly 1 (CUDA's exp2f, one MUFU.EX2 plus subnormal scaling,
// documents exp2f(+-0) = 1). The soft-argmax relies on that: a map's maximum gets weight 1,
// so a one-hot map's x is its peak's column exactly (test_backward_of_peaked_maps).
inline float ex2_approx_ftz(float a) {
  a = flush_subnormal(a);
  const float r = static_cast<float>(std::exp2(static_cast<double>(a)));
  if (a == 0.0f) return r;
  return flush_subnormal(nudge_ulps(r, a, 2));
}

// rcp.approx.ftz.f32: within 1 ulp; a subnormal input is a signed zero (result +-inf).
inline float rcp_approx_ftz(float b) {
  b = flush_subnormal(b);
  const float r = static_cast<float>(1.0 / static_cast<double>(b));
  return flush_subnormal(nudge_ulps(r, b, 1));
}

}  // namespace cuda_emu

inline int __popc(unsigned v) { return __builtin_popcount(v); }

// Fibers switch only at barriers, so a plain read-modify-write is atomic here. CUDA's
// overloads, so that arguments convert as they do under nvcc.
template <typename T>
T emu_atomic_add(T* address, T v) {
  const T old = *address;
  *address = old + v;
  return old;
}
inline int atomicAdd(int* a, int v) { return emu_atomic_add(a, v); }
inline unsigned atomicAdd(unsigned* a, unsigned v) { return emu_atomic_add(a, v); }
inline unsigned long long atomicAdd(unsigned long long* a, unsigned long long v) { return emu_atomic_add(a, v); }
inline float atomicAdd(float* a, float v) { return emu_atomic_add(a, v); }
inline double atomicAdd(double* a, double v) { return emu_atomic_add(a, v); }
