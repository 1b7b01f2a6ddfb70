// What the launchers' host code calls instead of c10::cuda, and the allocations it guards.
// Part of the CUDA emulation; included through cuda_emu.h only.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "block.h"

namespace cuda_emu {

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
  at::Tensor t = at::empty({0}, opts);
  t.set_(raw.storage(), 0, sizes);  // contiguous, and not a view: a tensor of its own on raw's storage
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
    if (!guard_intact(static_cast<const unsigned char*>(buf.data()) + bytes))
      fail(kernel + " wrote past the end of a tensor of " + std::to_string(bytes) + " bytes");
  }
}

// Every launch, in order, as (grid x, y, z, block x, y, z, dynamic shared bytes), for tests.
inline std::vector<int64_t>& launch_log() {
  static std::vector<int64_t> log;
  return log;
}

}  // namespace cuda_emu
