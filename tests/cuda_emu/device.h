// The device functions the kernels call: barriers, warp collectives, bit casts, math, atomics.
// Part of the CUDA emulation; included through cuda_emu.h only.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include "block.h"

inline void __syncthreads() { cuda_emu::arrive_and_wait(cuda_emu::current_block()->block_barrier); }

inline void __syncwarp(unsigned mask = 0xffffffffu) {
  cuda_emu::check_full_mask(mask, "__syncwarp");
  cuda_emu::warp_exchange("__syncwarp", 0);
}

namespace cuda_emu {

// First in the body of a kernel declared __launch_bounds__(bound) (build.py puts it there):
// a GPU does not launch such a kernel with a larger block.
inline void check_launch_bounds(long long bound, const char* text) {
  const long long threads = static_cast<long long>(blockDim.x) * blockDim.y * blockDim.z;
  if (threads > bound)
    fail("a block of " + std::to_string(threads) + " threads exceeds the kernel's __launch_bounds__(" + text +
         ") = " + std::to_string(bound) + "; a GPU refuses this launch");
}

// Every reinterpret_cast of posefast's sources (build.py rewrites them to this): a pointer
// cast to T* must be aligned for T, as a GPU's load or store of T requires (a 16-byte vector
// from an address that is only 4-byte aligned faults there; x86 would load it).
[[gnu::noinline, gnu::cold]] inline void fail_misaligned(uintptr_t address, size_t alignment) {
  fail("misaligned address: a pointer " + std::to_string(address % alignment) + " bytes past a " +
       std::to_string(alignment) + "-byte boundary cast to a type of that alignment");
}

// (always inlined: it sits on every vector load of the emulated kernels)
template <typename To, typename From>
[[gnu::always_inline]] inline To checked_reinterpret(From&& from) {  // by reference: a cast to a reference type stays one
  if constexpr (std::is_pointer_v<To> && std::is_pointer_v<std::remove_reference_t<From>>) {
    using Pointee = std::remove_cv_t<std::remove_pointer_t<To>>;
    if constexpr (!std::is_void_v<Pointee>) {
      const auto address = reinterpret_cast<uintptr_t>(from);
      if (address % alignof(Pointee) != 0) fail_misaligned(address, alignof(Pointee));
    }
  }
  return reinterpret_cast<To>(from);
}

// A full-warp shuffle named `what`: v published, the value of lane source(this lane) returned.
template <typename T, typename Source>
T shuffle(const char* what, unsigned mask, T v, int width, Source source) {
  check_full_mask(mask, what);
  if (width != 32) fail(std::string(what) + " with width != 32 is not modelled");
  const uint64_t* row = warp_exchange(what, to_bits(v));
  const unsigned from = source(current_block()->current % kWarp);
  return from < kWarp ? from_bits<T>(row[from]) : v;
}

}  // namespace cuda_emu

template <typename T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  return cuda_emu::shuffle("__shfl_down_sync", mask, v, width, [&](unsigned lane) { return lane + delta; });
}

template <typename T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  return cuda_emu::shuffle("__shfl_xor_sync", mask, v, width,
                           [&](unsigned lane) { return (lane ^ static_cast<unsigned>(lane_mask)) % cuda_emu::kWarp; });
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
