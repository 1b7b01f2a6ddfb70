// CPU-only SIMD helpers for the posefast kernels: Vec<N>, an N-float vector type (GCC/Clang
// vector extensions) with the loads, stores, reductions and the vector forms of pose_math.h's
// exp_poly and exp2_fast, and run_simd, which runs a kernel template at the widest width the
// CPU has: 16 floats compiled for AVX-512 (F/BW/DQ/VL), 8 for AVX2 + FMA, 4 (SSE2, or NEON
// off x86) for the rest. The width must match the target: a 16-float vector compiled for
// AVX2 is split in two, and GCC lowers its comparisons and selects one lane at a time (the
// soft-argmax kernels ran 4-13x slower that way on an AVX2 CPU, below PyTorch's eager
// reference at 64x48; benchmarks/NOTES.md). No -march flag: the extension still runs on any x86-64.
// POSEFAST_CPU_SIMD=avx512|avx2|baseline caps the level (tests run every width that way, and
// vec16 the 16-float kernels on any CPU; `torch.ops.posefast.cpu_simd_level()` says which one
// runs).
#pragma once

#include <c10/util/Exception.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "../include/pose_math.h"

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && \
    !defined(POSEFAST_NO_CPU_DISPATCH)
#define PF_X86_DISPATCH 1
// (features, not "arch=x86-64-v4": GCC refuses to inline the kernels into an arch= target when
// the build's own -march is not plain x86-64, e.g. conda's -march=nocona or -march=native)
#define PF_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")))
#define PF_TARGET_AVX2 __attribute__((target("avx2,fma")))
#else
#define PF_X86_DISPATCH 0
#endif

#if defined(__GNUC__) || defined(__clang__)
#define PF_HAVE_VEC 1
// __builtin_shufflevector: clang, and GCC from 12 on
#if defined(__clang__) || __GNUC__ >= 12
#define PF_HAVE_SHUFFLE 1
#else
#define PF_HAVE_SHUFFLE 0
#endif
// The 32- and 64-byte vectors below only live inside always-inlined helpers and the
// run_simd entries of their own target: no ABI crosses them.
#pragma GCC diagnostic ignored "-Wpsabi"
#define PF_VINLINE inline __attribute__((always_inline))
#else
#define PF_HAVE_VEC 0
#define PF_VINLINE inline
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
// N floats in one vector, and what the kernels do with them. Every helper is always inlined,
// so it is compiled for the target of the run_simd entry that instantiates it.
// (The types are spelled out per width: GCC's vector builtins reject a vector_size that
// depends on a template parameter.)
template <int N>
struct VecTypes;
#define PF_VEC_TYPES(N)                                                             \
  template <>                                                                       \
  struct VecTypes<N> {                                                              \
    typedef float vf __attribute__((vector_size(4 * N)));                           \
    typedef int32_t vi __attribute__((vector_size(4 * N)));                         \
    typedef uint32_t vu __attribute__((vector_size(4 * N)));                        \
    typedef uint16_t vh __attribute__((vector_size(2 * N)));  /* N bfloat16 values */ \
    typedef uint16_t vh2 __attribute__((vector_size(4 * N))); /* 2N halves of N floats */ \
  };
PF_VEC_TYPES(4)
PF_VEC_TYPES(8)
PF_VEC_TYPES(16)
#undef PF_VEC_TYPES

template <int N>
struct Vec {
  static constexpr int kLanes = N;
  using vf = typename VecTypes<N>::vf;
  using vi = typename VecTypes<N>::vi;
  using vu = typename VecTypes<N>::vu;
  using vh = typename VecTypes<N>::vh;
  using vh2 = typename VecTypes<N>::vh2;

  static PF_VINLINE vf splat(float v) { return vf{} + v; }

  static PF_VINLINE vf load(const float* p) {
    vf v;
    std::memcpy(&v, p, sizeof(v));
    return v;
  }

  static PF_VINLINE void store(float* p, vf v) { std::memcpy(p, &v, sizeof(v)); }

  // The first n < N floats at p, the other lanes set to `pad`.
  static PF_VINLINE vf load_tail(const float* p, int64_t n, float pad) {
    float a[N];
    for (int i = 0; i < N; ++i) a[i] = pad;
    std::memcpy(a, p, n * sizeof(float));
    return load(a);
  }

  static PF_VINLINE void store_tail(float* p, int64_t n, vf v) {
    float a[N];
    store(a, v);
    std::memcpy(p, a, n * sizeof(float));
  }

  // bfloat16 <-> float, N at a time; narrowing rounds to nearest even and maps NaN to
  // 0x7FC0, exactly as c10::BFloat16's conversion.
  static PF_VINLINE vf widen_bf16(const uint16_t* p) {
    vh h;
    std::memcpy(&h, p, sizeof(h));
    // each bfloat16 becomes the high half of a float (little-endian: odd 16-bit lanes), zeros
    // below it: one permute, where a zero-extend and shift lowers to several instructions
#if PF_HAVE_SHUFFLE
    const vh z{};
    if constexpr (N == 16) {
      return (vf)(vh2)__builtin_shufflevector(z, h, 0, 16, 0, 17, 0, 18, 0, 19, 0, 20, 0, 21, 0, 22,
                                              0, 23, 0, 24, 0, 25, 0, 26, 0, 27, 0, 28, 0, 29, 0, 30,
                                              0, 31);
    } else if constexpr (N == 8) {
      return (vf)(vh2)__builtin_shufflevector(z, h, 0, 8, 0, 9, 0, 10, 0, 11, 0, 12, 0, 13, 0, 14,
                                              0, 15);
    } else if constexpr (N == 4) {
      return (vf)(vh2)__builtin_shufflevector(z, h, 0, 4, 0, 5, 0, 6, 0, 7);
    }
#endif
    return (vf)(__builtin_convertvector(h, vu) << 16);
  }

  // v rounded to bfloat16 in the high half of each lane (the low half is garbage).
  static PF_VINLINE vu round_bf16(vf v) {
    const vu u = (vu)v;
    return v != v ? vu{} + 0x7FC00000u : u + (((u >> 16) & 1u) + 0x7FFFu);
  }

  static PF_VINLINE void narrow_bf16(uint16_t* p, vf v) {
#if PF_HAVE_SHUFFLE
    if constexpr (N == 8 || N == 4) {
      // the rounded value's high halves (odd 16-bit lanes), picked by one shuffle: AVX2 has
      // no truncating pack, and a shift + mask + saturating pack + permute costs five
      const vh2 halves = (vh2)round_bf16(v);
      vh h;
      if constexpr (N == 8)
        h = __builtin_shufflevector(halves, halves, 1, 3, 5, 7, 9, 11, 13, 15);
      else
        h = __builtin_shufflevector(halves, halves, 1, 3, 5, 7);
      std::memcpy(p, &h, sizeof(h));
      return;
    }
#endif
    const vh h = __builtin_convertvector(round_bf16(v) >> 16, vh);
    std::memcpy(p, &h, sizeof(h));
  }

  // Loads and stores of float or bfloat16 (its bits as uint16_t) maps as float vectors, so
  // one kernel template reads either without first widening the map into a buffer.
  static PF_VINLINE vf loadf(const float* p) { return load(p); }
  static PF_VINLINE vf loadf(const uint16_t* p) { return widen_bf16(p); }
  static PF_VINLINE vf loadf_tail(const float* p, int64_t n, float pad) {
    return load_tail(p, n, pad);
  }
  static PF_VINLINE vf loadf_tail(const uint16_t* p, int64_t n, float pad) {
    float a[N];
    for (int i = 0; i < N; ++i) a[i] = i < n ? to_float(p[i]) : pad;
    return load(a);
  }
  static PF_VINLINE void storef(float* p, vf v) { store(p, v); }
  static PF_VINLINE void storef(uint16_t* p, vf v) { narrow_bf16(p, v); }
  static PF_VINLINE void storef_tail(float* p, int64_t n, vf v) { store_tail(p, n, v); }
  static PF_VINLINE void storef_tail(uint16_t* p, int64_t n, vf v) {
    uint16_t a[N];
    narrow_bf16(a, v);
    std::memcpy(p, a, n * sizeof(uint16_t));
  }

  // Two vectors' worth (2N values) at once. For bfloat16 at N = 8 (AVX2) the 2N values land in
  // the order of AVX2's in-lane unpacks: a holds values 0-3 and 8-11, b 4-7 and 12-15, so
  // widening and narrowing need no lane-crossing permute (the shuffles below lower to
  // vpunpck{l,h}wd and vpshufb + vpblendd); pair_iota gives each lane's offset. Elsewhere
  // a = values 0..N-1, b = N..2N-1.
  static constexpr bool kInLanePairs = N == 8 && PF_HAVE_SHUFFLE;
  template <typename In>
  static PF_VINLINE void pair_iota(vf& ja, vf& jb) {
    float a[N], b[N];
    for (int i = 0; i < N; ++i) {
      const bool permuted = kInLanePairs && sizeof(In) == 2;
      a[i] = float(permuted ? (i / 4) * 8 + i % 4 : i);
      b[i] = float(permuted ? (i / 4) * 8 + i % 4 + 4 : i + N);
    }
    ja = load(a);
    jb = load(b);
  }
  static PF_VINLINE void loadf2(const float* p, vf& a, vf& b) {
    a = load(p);
    b = load(p + N);
  }
  static PF_VINLINE void loadf2(const uint16_t* p, vf& a, vf& b) {
#if PF_HAVE_SHUFFLE
    if constexpr (kInLanePairs) {
      vh2 h;
      std::memcpy(&h, p, sizeof(h));
      const vh2 z{};
      a = (vf)__builtin_shufflevector(z, h, 0, 16, 0, 17, 0, 18, 0, 19, 0, 24, 0, 25, 0, 26, 0, 27);
      b = (vf)__builtin_shufflevector(z, h, 0, 20, 0, 21, 0, 22, 0, 23, 0, 28, 0, 29, 0, 30, 0, 31);
      return;
    }
#endif
    a = widen_bf16(p);
    b = widen_bf16(p + N);
  }
  static PF_VINLINE void storef2(float* p, vf a, vf b) {
    store(p, a);
    store(p + N, b);
  }
  static PF_VINLINE void storef2(uint16_t* p, vf a, vf b) {
#if PF_HAVE_SHUFFLE
    if constexpr (kInLanePairs) {
      const vh2 h = __builtin_shufflevector((vh2)round_bf16(a), (vh2)round_bf16(b), 1, 3, 5, 7, 17, 19,
                                            21, 23, 9, 11, 13, 15, 25, 27, 29, 31);
      std::memcpy(p, &h, sizeof(h));
      return;
    }
#endif
    narrow_bf16(p, a);
    narrow_bf16(p + N, b);
  }

  // 0, 1, ..., N - 1
  static PF_VINLINE vf iota() {
    float a[N];
    for (int i = 0; i < N; ++i) a[i] = float(i);
    return load(a);
  }

  // Pairwise sum of the lanes (the order, and so the rounding, depends on N only).
  static PF_VINLINE float hsum(vf v) {
    float a[N];
    std::memcpy(a, &v, sizeof(v));
    for (int w = N / 2; w > 0; w /= 2)
      for (int i = 0; i < w; ++i) a[i] += a[i + w];
    return a[0];
  }

  static PF_VINLINE float hmax(vf v) {
    float a[N];
    std::memcpy(a, &v, sizeof(v));
    float m = a[0];
    for (int i = 1; i < N; ++i) m = a[i] > m ? a[i] : m;
    return m;
  }

  static PF_VINLINE vf vmax(vf a, vf b) { return a > b ? a : b; }

  // exp_poly of pose_math.h, lane-wise; same constants, same steps.
  static PF_VINLINE vf exp_poly(vf x) {
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
  static PF_VINLINE vf exp2_fast(vf a) {
    a = vmax(a, splat(kExp2Lo));
    vf t;
    const vf p = exp2_reduced(a, t);
    return (vf)((vu)p + ((vu)t << 23));
  }
};
#else
template <int N>
struct Vec {  // no vector extensions: the kernels take their scalar loops
  static constexpr int kLanes = N;
};
#endif

// ---------------------------------------------------------------- picking the width at run time

// kVec16 is for tests: AVX-512's 16-float kernels compiled for the baseline (slow: the
// lane-by-lane lowering above), so any machine runs their lane logic.
enum class SimdLevel : int { kBaseline = 0, kAvx2 = 1, kAvx512 = 2, kVec16 = 3 };

inline const char* simd_level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::kAvx512: return "avx512";
    case SimdLevel::kAvx2: return "avx2";
    case SimdLevel::kVec16: return "vec16";
    default: return "baseline";
  }
}

// What this CPU runs: AVX-512 F/BW/DQ/VL, else AVX2 + FMA, else the baseline.
inline SimdLevel detect_simd_level() {
#if PF_X86_DISPATCH
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    return SimdLevel::kAvx512;
  if (avx2) return SimdLevel::kAvx2;
#endif
  return SimdLevel::kBaseline;
}

// The detected level, capped by POSEFAST_CPU_SIMD (read once per process; an unknown value is
// an error on every call, a level the CPU lacks a warning; "vec16" runs on any CPU).
inline SimdLevel cpu_simd_level() {
  static const SimdLevel level = [] {
    const SimdLevel detected = detect_simd_level();
    const char* env = std::getenv("POSEFAST_CPU_SIMD");
    if (env == nullptr || *env == '\0') return detected;
    const std::string want(env);
    SimdLevel asked;
    if (want == "vec16") return SimdLevel::kVec16;
    if (want == "avx512") asked = SimdLevel::kAvx512;
    else if (want == "avx2") asked = SimdLevel::kAvx2;
    else if (want == "baseline") asked = SimdLevel::kBaseline;
    else TORCH_CHECK(false, "POSEFAST_CPU_SIMD must be avx512, avx2, baseline or vec16 (or unset), got '",
                     want, "'");
    if (asked > detected)
      TORCH_WARN("POSEFAST_CPU_SIMD=", want, " but this CPU only runs ", simd_level_name(detected),
                 "; using ", simd_level_name(detected));
    return asked < detected ? asked : detected;
  }();
  return level;
}

#if PF_X86_DISPATCH
template <class Kernel, class... Args>
PF_TARGET_AVX512 auto run_avx512(Args... args) {
  return Kernel::template run<Vec<16>>(args...);
}

template <class Kernel, class... Args>
PF_TARGET_AVX2 auto run_avx2(Args... args) {
  return Kernel::template run<Vec<8>>(args...);
}
#endif

// Kernel::run<V>(args...) with V the vector of cpu_simd_level()'s width, compiled for that
// target. Kernel::run must be PF_VINLINE: it is then compiled inside each entry above.
template <class Kernel, class... Args>
inline auto run_simd(Args... args) {
  switch (cpu_simd_level()) {
#if PF_X86_DISPATCH
    case SimdLevel::kAvx512: return run_avx512<Kernel>(args...);
    case SimdLevel::kAvx2: return run_avx2<Kernel>(args...);
#endif
    case SimdLevel::kVec16: return Kernel::template run<Vec<16>>(args...);
    default: break;
  }
  return Kernel::template run<Vec<4>>(args...);
}

}  // namespace simd
}  // namespace posefast
