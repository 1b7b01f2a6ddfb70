// A CUDA execution model on the CPU, for running posefast's .cu kernels without a GPU.
//
// tests/cuda_emu/build.py rewrites each csrc/cuda/*.cu into C++ that includes this
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
//   - a pointer cast (reinterpret_cast, rewritten to checked_reinterpret) to a type it is not
//     aligned for, such as a 16-byte vector at a 4-byte-aligned address ("misaligned
//     address" on a GPU);
//   - a block larger than the kernel's __launch_bounds__.
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
// launchers) sees the device branches too. Not modelled: races the three schedules do not
// order differently, timing.
#pragma once

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

// build.py turns __CUDA_ARCH__ in posefast's sources into this
#define CUDA_EMU_DEVICE_CODE 1

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline

// the parts, each one concept; they use the globals and macros above
#include "block.h"
#include "host.h"
#include "launch.h"
#include "device.h"
