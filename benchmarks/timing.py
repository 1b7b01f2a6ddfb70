"""Timing and bandwidth helpers shared by the posefast benchmarks (run.py, pose_loss_bench.py).

``time_fn`` returns every timed call in microseconds (CUDA events on the GPU,
``perf_counter`` on the CPU), rotating over several input sets so repeats do not just
re-read cached data; ``copy_bandwidth`` measures the device's copy GB/s (read + write)
that each benchmark row's achieved bandwidth is compared with. On CUDA,
``graph_replay_times`` and ``device_times`` take the host's share out of a call in two ways,
and ``launch_floor`` times a trivial op: the host's cost of any call.
"""
import ctypes
import ctypes.util
import platform
import statistics
import subprocess
import time

import torch


def error_line(exc):
    """``Type: first line of the message`` (at most 200 characters), for a row's error field."""
    msg = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{type(exc).__name__}: {msg}"


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
    simd = cpu_simd()
    return f"{cpu_model()} ({torch.get_num_threads()} threads" + (f", {simd} kernels)" if simd else ")")


def cpu_simd():
    """The vector width posefast's CPU kernels run at (None for an extension built before it was
    reported, such as the GPU script's fallback kernels)."""
    if not hasattr(torch.ops.posefast, "cpu_simd_level"):
        return None
    return torch.ops.posefast.cpu_simd_level()


def llc_bytes(device):
    """Bytes the rotated inputs should exceed: 2x the GPU L2 / a generous CPU LLC guess."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return 2 * int(getattr(props, "L2_cache_size", 50 << 20) or (50 << 20))
    return 64 << 20


def time_fn(fn, arg_sets, device, repeats, warmup, budget_s, before=None):
    """Microseconds of each timed call of ``fn(*args)``, rotating over ``arg_sets``.

    At least 3 and at most ``repeats`` timed calls, stopping early once ``budget_s`` of timed
    calls has passed. ``before()`` (CUDA only) runs ahead of each call's start event.
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
            if before is not None:
                before()
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


def graph_replay_times(fn, arg_sets, device, repeats, warmup, budget_s):
    """CUDA: ``fn(*args)`` captured once per input set in a CUDA graph, and the replays
    timed like :func:`time_fn`. That is the device time without the Python, dispatch and
    launch overhead: what the kernels cost inside a captured training step. ``fn`` must have
    run eagerly before (capture needs its lazy initialisation done)."""
    graphs = []
    for args in arg_sets:
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            fn(*args)
        graphs.append((graph,))
    return time_fn(lambda graph: graph.replay(), graphs, device, repeats, warmup, budget_s)


_SPIN_CYCLES_PER_US = {}


def spin_cycles_per_us(device):
    """Clock cycles per microsecond of ``torch.cuda._sleep``'s spin kernel on ``device``."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    if index not in _SPIN_CYCLES_PER_US:
        cycles = 2_000_000
        torch.cuda._sleep(cycles)  # first launch: module load
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        torch.cuda._sleep(cycles)
        end.record()
        end.synchronize()
        _SPIN_CYCLES_PER_US[index] = cycles / (start.elapsed_time(end) * 1e3)
    return _SPIN_CYCLES_PER_US[index]


def device_times(fn, arg_sets, device, repeats, warmup, budget_s, lead_us):
    """CUDA: the device's own time for ``fn(*args)``, host time hidden.

    Before each timed call a one-thread spin kernel keeps the stream busy for ``lead_us``, so
    the host enqueues the start event, ``fn``'s kernels and the end event before the device
    reaches them; the events then bracket the kernels and the device-side gaps between them,
    not the Python, dispatch and launch time of the host. (The same idea as the cache flush
    that ``triton.testing.do_bench`` runs ahead of each call.) ``lead_us`` must exceed the
    host's time per call: the per-call time measured by :func:`time_fn` bounds it.
    """
    cycles = int(lead_us * spin_cycles_per_us(device))
    return time_fn(fn, arg_sets, device, repeats, warmup, budget_s, before=lambda: torch.cuda._sleep(cycles))


def launch_floor(device, repeats, budget_s):
    """Microseconds per call of a trivial native op (``zero_`` of one float): per call, and on
    CUDA also replayed from a CUDA graph and as device time: what any op costs on this host
    before it does any work."""
    x = torch.zeros(1, device=device)
    zero = lambda t: t.zero_()  # noqa: E731
    out = {"per_call_us": statistics.median(time_fn(zero, [(x,)], device, repeats, 10, budget_s))}
    if device.type == "cuda":
        out["graph_us"] = statistics.median(graph_replay_times(zero, [(x,)], device, repeats, 10, budget_s))
        out["device_us"] = statistics.median(device_times(zero, [(x,)], device, repeats, 10, budget_s,
                                                          lead_us=50 + 3 * out["per_call_us"]))
    return out


def copy_bandwidth(device, nbytes, repeats, budget_s):
    """GB/s of a large device-to-device copy, counting bytes read + written."""
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=device).uniform_()
    dst = torch.empty_like(src)
    us = statistics.median(time_fn(lambda: dst.copy_(src), [()], device, repeats, 3, budget_s))
    del src, dst
    return 2 * nbytes / (us * 1e-6) / 1e9


# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def steady_cpu_allocator() -> str | None:
    """Makes glibc's heap behave the same in every benchmark process; returns what was set.

    By default glibc serves large blocks with mmap until a free raises its dynamic threshold,
    and trims the heap when its top grows past twice that: whether a 13 MB temporary costs
    thousands of page faults then depends on the process's allocation history. Measured here,
    the eager soft-argmax reference (B64 64x48 float32) took 2.4, 3.6 or 13.5 ms in three
    identical runs. Blocks up to 32 MiB (glibc's ceiling) from the heap and no trimming make
    it 2.6-2.9 ms. Larger blocks are still mmapped, the same way in every run. None where
    the C library is not glibc.
    """
    name = ctypes.util.find_library("c")
    if platform.system() != "Linux" or not name:
        return None
    try:
        libc = ctypes.CDLL(name)
        if not hasattr(libc, "mallopt") or not hasattr(libc, "gnu_get_libc_version"):
            return None
        ok = libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30) == 1
    except OSError:
        return None
    return "glibc mallopt: mmap threshold 32 MiB, trim threshold 1 GiB" if ok else None

