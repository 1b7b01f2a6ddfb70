// Which vector width the CPU kernels run at (cpu_simd.h's run_simd): "avx512", "avx2" or
// "baseline", after POSEFAST_CPU_SIMD's cap ("vec16" when tests ask for it). Benchmarks record
// it; tests check the cap.
#include <torch/library.h>

#include <string>

#include "cpu_simd.h"

namespace posefast {
namespace {

std::string cpu_simd_level_op() { return simd::simd_level_name(simd::cpu_simd_level()); }

}  // namespace

TORCH_LIBRARY_IMPL(posefast, CompositeImplicitAutograd, m) {
  m.impl("cpu_simd_level", &cpu_simd_level_op);
}

}  // namespace posefast
