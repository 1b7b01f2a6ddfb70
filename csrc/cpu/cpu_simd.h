// CPU-only SIMD helpers for the posefast kernels: a 16-float vector type (GCC/Clang vector
// extensions, lowered to SSE2, AVX2 or AVX-512 by whichever target the function is compiled
// for), the vector forms of pose_math.h's exp_poly and exp2_fast, and PF_CPU_CLONES, which
// compiles a hot function for x86-64-v4 (AVX-512 F/BW/DQ/VL), AVX2 and the baseline x86-64
// and picks one at load time (GCC target_clones / ifunc), so the wheel still runs on any
// x86-64 CPU.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "../include/pose_math.h"

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && defined(__linux__) && \
    !defined(POSEFAST_NO_CPU_CLONES)
#if defined(__clang__) || __GNUC__ < 12  // x86-64-v4 as a clone target: GCC 12 and later
#define PF_CPU_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define PF_CPU_CLONES __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#endif
#else
#define PF_CPU_CLONES
#endif

#if defined(__GNUC__) || defined(__clang__)
#define PF_HAVE_VEC 1
// The 64-byte vectors below only live inside always-inlined helpers: no ABI crosses them.
#pragma GCC diagnostic ignored "-Wpsabi"
#define PF_VINLINE inline __attribute__((always_inline))
#else
#define PF_HAVE_VEC 0
#endif

namespace posefast {

// Asks Linux to back the 2 MiB-aligned interior of a large, not yet touched output buffer
// with transparent huge pages (when THP is in "madvise" mode, as on most distributions).
// A fresh multi-MB tensor otherwise costs one page fault + 4 KiB zeroing per page on
// first write, which for a 200 MB heatmap batch takes longer than writing it (see
// benchmarks/NOTES.md). Advisory only: failures are ignored, values are unaffected.
// PyTorch's own allocator does the same for every large tensor under THP_MEM_ALLOC_ENABLE=1.
inline void advise_huge_pages(void* ptr, size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t(2) << 20;
  if (bytes < 4 * kHuge) return;
  const uintptr_t p = reinterpret_cast<uintptr_t>(ptr);
  const uintptr_t begin = (p + kHuge - 1) & ~(kHuge - 1), end = (p + bytes) & ~(kHuge - 1);
  if (end > begin) (void)madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#else
  (void)ptr;
  (void)bytes;
#endif
}

namespace simd {

// One float or bfloat16 (its bits as uint16_t) value as float, and back (rounding to nearest
// even, NaN -> 0x7FC0, as c10::BFloat16 and narrow_bf16 below).
inline float to_float(float v) { return v; }
inline float to_float(uint16_t bits) {
  const uint32_t b = uint32_t(bits) << 16;
  float v;
  std::memcpy(&v, &b, sizeof(v));
  return v;
}
inline void store_scalar(float* p, float v) { *p = v; }
inline void store_scalar(uint16_t* p, float v) {
  uint32_t u;
  std::memcpy(&u, &v, sizeof(u));
  *p = v != v ? uint16_t(0x7FC0) : uint16_t((u + (((u >> 16) & 1u) + 0x7FFFu)) >> 16);
}

#if PF_HAVE_VEC
constexpr int kLanes = 16;
typedef float vf __attribute__((vector_size(64)));
typedef int32_t vi __attribute__((vector_size(64)));
typedef uint32_t vu __attribute__((vector_size(64)));

PF_VINLINE vf splat(float v) { return vf{} + v; }

PF_VINLINE vf load(const float* p) {
  vf v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

PF_VINLINE void store(float* p, vf v) { std::memcpy(p, &v, sizeof(v)); }

// The first n < kLanes floats at p, the other lanes set to `pad`.
PF_VINLINE vf load_tail(const float* p, int64_t n, float pad) {
  float a[kLanes];
  for (int i = 0; i < kLanes; ++i) a[i] = pad;
  std::memcpy(a, p, n * sizeof(float));
  return load(a);
}

PF_VINLINE void store_tail(float* p, int64_t n, vf v) {
  float a[kLanes];
  store(a, v);
  std::memcpy(p, a, n * sizeof(float));
}

// bfloat16 <-> float, 16 at a time; narrowing rounds to nearest even and maps NaN to
// 0x7FC0, exactly as c10::BFloat16's conversion.
typedef uint16_t vh __attribute__((vector_size(32)));

typedef uint16_t vh2 __attribute__((vector_size(64)));

PF_VINLINE vf widen_bf16(const uint16_t* p) {
  vh h;
  std::memcpy(&h, p, sizeof(h));
  // each bfloat16 becomes the high half of a float (little-endian: odd 16-bit lanes), zeros
  // below it: one permute, where a zero-extend and shift lowers to five instructions
#if defined(__clang__) || __GNUC__ >= 12
  const vh z{};
  const vh2 w = __builtin_shufflevector(z, h, 0, 16, 0, 17, 0, 18, 0, 19, 0, 20, 0, 21, 0, 22, 0, 23,
                                        0, 24, 0, 25, 0, 26, 0, 27, 0, 28, 0, 29, 0, 30, 0, 31);
  return (vf)w;
#else
  return (vf)(__builtin_convertvector(h, vu) << 16);
#endif
}

PF_VINLINE void narrow_bf16(uint16_t* p, vf v) {
  const vu u = (vu)v;
  const vu rounded = (u + (((u >> 16) & 1u) + 0x7FFFu)) >> 16;
  const vu r = v != v ? vu{} + 0x7FC0u : rounded;
  const vh h = __builtin_convertvector(r, vh);
  std::memcpy(p, &h, sizeof(h));
}

// Loads and stores of float or bfloat16 (its bits as uint16_t) maps as float vectors, so one
// kernel template reads either without first widening the map into a buffer.
PF_VINLINE vf loadf(const float* p) { return load(p); }
PF_VINLINE vf loadf(const uint16_t* p) { return widen_bf16(p); }
PF_VINLINE vf loadf_tail(const float* p, int64_t n, float pad) { return load_tail(p, n, pad); }
PF_VINLINE vf loadf_tail(const uint16_t* p, int64_t n, float pad) {
  float a[kLanes];
  for (int i = 0; i < kLanes; ++i) a[i] = i < n ? to_float(p[i]) : pad;
  return load(a);
}
PF_VINLINE void storef(float* p, vf v) { store(p, v); }
PF_VINLINE void storef(uint16_t* p, vf v) { narrow_bf16(p, v); }
PF_VINLINE void storef_tail(float* p, int64_t n, vf v) { store_tail(p, n, v); }
PF_VINLINE void storef_tail(uint16_t* p, int64_t n, vf v) {
  uint16_t a[kLanes];
  narrow_bf16(a, v);
  std::memcpy(p, a, n * sizeof(uint16_t));
}

// 0, 1, ..., 15
PF_VINLINE vf iota() {
  return vf{0.f, 1.f, 2.f, 3.f, 4.f, 5.f, 6.f, 7.f, 8.f, 9.f, 10.f, 11.f, 12.f, 13.f, 14.f, 15.f};
}

PF_VINLINE float hsum(vf v) {
  // pairwise, so the rounding does not depend on the target the caller was compiled for
  float a[kLanes];
  std::memcpy(a, &v, sizeof(v));
  for (int w = kLanes / 2; w > 0; w /= 2)
    for (int i = 0; i < w; ++i) a[i] += a[i + w];
  return a[0];
}

PF_VINLINE float hmax(vf v) {
  float a[kLanes];
  std::memcpy(a, &v, sizeof(v));
  float m = a[0];
  for (int i = 1; i < kLanes; ++i) m = a[i] > m ? a[i] : m;
  return m;
}

PF_VINLINE vf vmax(vf a, vf b) { return a > b ? a : b; }

// exp_poly of pose_math.h, lane-wise; same constants, same steps.
PF_VINLINE vf exp_poly(vf x) {
  x = x < kExpLo ? splat(kExpLo) : x;
  x = x > kExpHi ? splat(kExpHi) : x;
  vf t;
  const vf e = exp_poly_reduced(x, t);
  const vi n = (vi)t - pf_float_bits(kExpRoundMagic);  // (vi)t: the bits, as a C cast of vectors is
  const vi h = n >> 1;
  const vu b1 = (vu)(h + 127) << 23;
  const vu b2 = (vu)(n - h + 127) << 23;
  return e * (vf)b1 * (vf)b2;
}

// exp2_fast of pose_math.h, lane-wise: same constants, same steps.
PF_VINLINE vf exp2_fast(vf a) {
  a = vmax(a, splat(kExp2Lo));
  vf t;
  const vf p = exp2_reduced(a, t);
  return (vf)((vu)p + ((vu)t << 23));
}
#endif

}  // namespace simd
}  // namespace posefast
