"""Timing and bandwidth helpers shared by the posefast benchmarks (run.py, pose_loss_bench.py).

``time_fn`` returns every timed call in microseconds (CUDA events on the GPU,
``perf_counter`` on the CPU), rotating over several input sets so repeats do not just
re-read cached data; ``copy_bandwidth`` measures the device's copy GB/s (read + write)
that each benchmark row's achieved bandwidth is compared with.
"""
import platform
import statistics
import subprocess
import time

import torch


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown CPU"


def device_name(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()} ({torch.get_num_threads()} threads)"


def llc_bytes(device):
    """Bytes the rotated inputs should exceed: 2x the GPU L2 / a generous CPU LLC guess."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return 2 * int(getattr(props, "L2_cache_size", 50 << 20) or (50 << 20))
    return 64 << 20


def time_fn(fn, arg_sets, device, repeats, warmup, budget_s):
    """Microseconds of each timed call of ``fn(*args)``, rotating over ``arg_sets``.

    At least 3 and at most ``repeats`` timed calls, stopping early once ``budget_s`` of timed
    calls has passed.
    """
    n = len(arg_sets)
    for i in range(warmup):
        fn(*arg_sets[i % n])
    synchronize(device)
    times = []
    if device.type == "cuda":
        events = []
        start_wall = time.perf_counter()
        for i in range(repeats):
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            fn(*arg_sets[i % n])
            e.record()
            events.append((s, e))
            if i >= 2 and i % 16 == 15:
                e.synchronize()
                if time.perf_counter() - start_wall > budget_s:
                    break
        torch.cuda.synchronize(device)
        times = [s.elapsed_time(e) * 1e3 for s, e in events]
    else:
        spent = 0.0
        for i in range(repeats):
            t0 = time.perf_counter()
            fn(*arg_sets[i % n])
            dt = time.perf_counter() - t0
            times.append(dt * 1e6)
            spent += dt
            if i >= 2 and spent > budget_s:
                break
    return times


def copy_bandwidth(device, nbytes, repeats, budget_s):
    """GB/s of a large device-to-device copy, counting bytes read + written."""
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=device).uniform_()
    dst = torch.empty_like(src)
    us = statistics.median(time_fn(lambda: dst.copy_(src), [()], device, repeats, 3, budget_s))
    del src, dst
    return 2 * nbytes / (us * 1e-6) / 1e9
