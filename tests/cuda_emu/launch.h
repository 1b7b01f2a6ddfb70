// A kernel launch, kernel<<<grid, block, smem, stream>>>(args) as translated: Launch(grid, block, smem, stream).run(name, kernel, args).
// Part of the CUDA emulation; included through cuda_emu.h only.
#pragma once

#include <mutex>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "block.h"
#include "host.h"

namespace cuda_emu {

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
};

}  // namespace cuda_emu
