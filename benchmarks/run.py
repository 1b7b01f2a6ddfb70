#!/usr/bin/env python
"""posefast benchmarks: each op against its pure-PyTorch reference, eager and compiled.

    python benchmarks/run.py                       # every op and size, CUDA if visible else CPU
    python benchmarks/run.py --device cpu --quick  # ~20 s on 2 CPU cores
    python benchmarks/run.py --ops render,soft_argmax --sizes 64x48,256x192 --json out.json
    python benchmarks/run.py --ops pose_loss       # fused pose loss vs unfused vs eager (B=128)
    python benchmarks/run.py --data                # PoseLoader samples/s vs an mmpose-style DataLoader
    python benchmarks/run.py --train               # training images/s (posefast.train_benchmark)

For every (op, dtype, size) row it times the reference in ``kernels_py`` (eager), the same
reference under ``torch.compile`` and the posefast op (the public ``posefast.ops`` entry
point, validation included): the median of many timed repeats after a warm-up, CUDA events
on the GPU, ``perf_counter`` on the CPU. Inputs rotate over several copies whose total size
exceeds the last-level cache, so repeats do not just re-read cached data.

Bandwidth: the run first times a large device-to-device copy (bytes read + written). Each
row's ``GB/s`` is the fewest bytes the op must move (inputs read once, outputs written once)
over the posefast time, and ``%copy`` that as a fraction of the measured copy bandwidth.

On CUDA the per-call column counts the host too wherever the kernels are shorter than the
host's Python, dispatch and launch time. Two more columns take the host out of the posefast
op's time: ``graph us`` (captured once in a CUDA graph, replays timed) and ``device us``
(each call queued behind a spin kernel, so the events bracket device work only). The
``launch floor`` line times a one-float ``zero_`` all three ways: the cost of any call on
this host before it does any work.
"""
import argparse
import datetime
import json
import math
import os
import platform
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import torch  # noqa: E402

import kernels_py  # noqa: E402
from mmpose_style_loader import MmposeStyleBench  # noqa: E402
from pose_loss_bench import bench_pose_loss, format_rows  # noqa: E402
from timing import (copy_bandwidth, cpu_simd, device_name, device_times, error_line,  # noqa: E402
                    graph_replay_times, launch_floor, llc_bytes, steady_cpu_allocator, synchronize, time_fn)
from posefast import ops as pf  # noqa: E402

NUM_JOINTS = 17
SIGMA = 2.0
BETA = 1.0
PCK_N, PCK_T = 4096, 20
DEFAULT_SIZES = ["64x48", "96x72", "256x192", "256:64x48"]
ALL_OPS = ["render", "soft_argmax", "soft_argmax_bwd", "soft_argmax_fwd_bwd", "pck_counts", "pose_loss"]
DEFAULT_LOSS_SIZES = ["128:64x48", "128:256x192"]  # the fused pose loss (issue 8): B = 128
# soft-argmax ops also run with bfloat16 input
DTYPES = {"render": ["float32"], "soft_argmax": ["float32", "bfloat16"], "soft_argmax_bwd": ["float32", "bfloat16"],
          "soft_argmax_fwd_bwd": ["float32", "bfloat16"], "pck_counts": ["float32"],
          "pose_loss": ["float32", "bfloat16"]}


# ------------------------------------------------------------------ helpers
def parse_size(text, batch=64):
    """'HxW' (B = ``batch``) or 'B:HxW' -> (B, H, W)."""
    if ":" in text:
        b, text = text.split(":", 1)
        batch = int(b)
    h, w = text.lower().split("x")
    return batch, int(h), int(w)


def size_label(batch, h, w):
    return f"B{batch} {h}x{w}"


# ------------------------------------------------------------------ cases
class Case:
    """One benchmark row: input sets, the three callables and the minimal bytes moved."""

    def __init__(self, op, dtype, size, make_inputs, eager, posefast, nbytes, compiled_from=None, label=None):
        self.op, self.dtype, self.size = op, dtype, size
        self.make_inputs, self.eager, self.posefast, self.nbytes = make_inputs, eager, posefast, nbytes
        self.compiled_from = compiled_from  # builds the torch.compile callable
        self.label = label


def _elsize(dtype):
    return torch.empty((), dtype=dtype).element_size()


def render_case(device, batch, h, w, dtype):
    def make(seed):
        gen = torch.Generator().manual_seed(seed)
        kp = torch.rand(batch, NUM_JOINTS, 2, generator=gen) * torch.tensor([w - 1.0, h - 1.0])
        vis = (torch.rand(batch, NUM_JOINTS, generator=gen) > 0.2).float()
        return kp.to(device), vis.to(device)

    def eager(kp, vis):
        return kernels_py.render_heatmaps(kp, vis, (h, w), SIGMA, dtype)

    def posefast(kp, vis):
        return pf.render_heatmaps(kp, vis, (h, w), SIGMA, dtype)

    def compiled():
        cfn = torch.compile(kernels_py.render_heatmaps, dynamic=False)
        return lambda kp, vis: cfn(kp, vis, (h, w), SIGMA, dtype)

    nbytes = batch * NUM_JOINTS * (h * w * _elsize(dtype) + 3 * 4)
    return Case("render", dtype, (batch, h, w), make, eager, posefast, nbytes, compiled)


def _logits(batch, h, w, dtype, device, seed, requires_grad=False):
    gen = torch.Generator().manual_seed(seed)
    x = (torch.randn(batch, NUM_JOINTS, h, w, generator=gen) * 3).to(device=device, dtype=dtype)
    return x.requires_grad_(requires_grad)


def _grad_coords(batch, device, seed):
    gen = torch.Generator().manual_seed(seed + 1000)
    return torch.randn(batch, NUM_JOINTS, 2, generator=gen).to(device)


def soft_argmax_case(device, batch, h, w, dtype):
    def make(seed):
        return (_logits(batch, h, w, dtype, device, seed),)

    def compiled():
        return torch.compile(kernels_py.soft_argmax, dynamic=False)

    # read the heatmaps once, write (x, y) once
    nbytes = batch * NUM_JOINTS * (h * w * _elsize(dtype) + 2 * 4)
    return Case("soft_argmax", dtype, (batch, h, w), make, lambda x: kernels_py.soft_argmax(x, BETA),
                lambda x: pf.soft_argmax(x, BETA), nbytes, compiled)


def soft_argmax_fwd_bwd_case(device, batch, h, w, dtype):
    def make(seed):
        return _logits(batch, h, w, dtype, device, seed, requires_grad=True), _grad_coords(batch, device, seed)

    def run(forward):
        return lambda x, g: torch.autograd.grad(forward(x), x, g)

    def compiled():
        return run(torch.compile(kernels_py.soft_argmax, dynamic=False))

    # fewest bytes for the pair: the heatmaps read once, their gradient written once
    nbytes = batch * NUM_JOINTS * (2 * h * w * _elsize(dtype) + 4 * 4)
    return Case("soft_argmax_fwd_bwd", dtype, (batch, h, w), make, run(lambda x: kernels_py.soft_argmax(x, BETA)),
                run(lambda x: pf.soft_argmax(x, BETA)), nbytes, compiled)


def soft_argmax_bwd_case(device, batch, h, w, dtype):
    """The backward pass alone: each input set carries a retained graph of its forward."""

    def make(seed):
        x = _logits(batch, h, w, dtype, device, seed, requires_grad=True)
        return x, _grad_coords(batch, device, seed)

    def with_graph(forward):
        # one graph per input set, built lazily and cached on the set
        cache = {}

        def fn(x, g):
            key = id(x)
            if key not in cache:
                cache[key] = forward(x)
            return torch.autograd.grad(cache[key], x, g, retain_graph=True)

        return fn

    saved = {}

    def posefast(x, g):
        key = id(x)
        if key not in saved:
            with torch.no_grad():
                saved[key] = torch.ops.posefast.soft_argmax_forward(x, BETA)
        coords, lse = saved[key]
        return torch.ops.posefast.soft_argmax_backward(g, x.detach(), coords, lse, BETA)

    def compiled():
        return with_graph(torch.compile(kernels_py.soft_argmax, dynamic=False))

    # read the heatmaps once, write their gradient once (+ coords, lse, grad_coords)
    nbytes = batch * NUM_JOINTS * (2 * h * w * _elsize(dtype) + 5 * 4)
    return Case("soft_argmax_bwd", dtype, (batch, h, w), make, with_graph(lambda x: kernels_py.soft_argmax(x, BETA)),
                posefast, nbytes, compiled)


def pck_case(device, n=PCK_N, t=PCK_T):
    def make(seed):
        gen = torch.Generator().manual_seed(seed)
        gt = torch.rand(n, NUM_JOINTS, 2, generator=gen) * 100
        pred = gt + torch.randn(n, NUM_JOINTS, 2, generator=gen) * 8
        vis = torch.rand(n, NUM_JOINTS, generator=gen) > 0.25
        norm = torch.rand(n, generator=gen) * 60 + 1
        thr = torch.linspace(0.0, 0.5, t)
        return tuple(x.to(device) for x in (pred, gt, vis, norm, thr))

    def compiled():
        return torch.compile(kernels_py.pck_counts, dynamic=False)

    nbytes = n * NUM_JOINTS * (2 * 2 * 4 + 1) + n * 4 + t * 4 + (t + 1) * NUM_JOINTS * 8
    return Case("pck_counts", torch.float32, None, make, kernels_py.pck_counts, pf.pck_counts, nbytes, compiled,
                label=f"N{n} T{t}")


BUILDERS = {"render": render_case, "soft_argmax": soft_argmax_case, "soft_argmax_bwd": soft_argmax_bwd_case,
            "soft_argmax_fwd_bwd": soft_argmax_fwd_bwd_case}


def build_cases(ops, sizes, device, dtypes_filter):
    """Yields the cases one at a time (each holds its inputs' graphs only while it runs)."""
    for op in ops:
        if op == "pose_loss":
            continue  # its own table: run_pose_loss
        if op == "pck_counts":
            yield pck_case(device)
            continue
        for dname in DTYPES[op]:
            if dtypes_filter and dname not in dtypes_filter:
                continue
            for batch, h, w in sizes:
                yield BUILDERS[op](device, batch, h, w, getattr(torch, dname))


# ------------------------------------------------------------------ running
def run_case(case, device, args, copy_gbs):
    set_bytes = max(case.nbytes, 1)
    n_sets = max(1, min(args.max_sets, math.ceil(llc_bytes(device) / set_bytes)))
    arg_sets = [case.make_inputs(seed) for seed in range(n_sets)]
    warmup = max(2, n_sets)
    row = {"op": case.op, "dtype": str(case.dtype).replace("torch.", ""),
           "size": case.label or size_label(*case.size), "input_sets": n_sets, "bytes": case.nbytes}
    fns = {"posefast": case.posefast}
    if not args.no_eager:
        fns["eager"] = case.eager
    if not args.no_compile:
        try:
            # a fresh dynamo cache per row: the same reference function is compiled for many
            # shapes and dtypes, which would otherwise hit the recompile limit and run eagerly
            torch._dynamo.reset()
            fn = case.compiled_from()
            t0 = time.perf_counter()
            fn(*arg_sets[0])
            synchronize(device)
            row["compile_s"] = round(time.perf_counter() - t0, 2)
            fns["compiled"] = fn
        except Exception as exc:  # report, keep benchmarking the other rows
            row["compiled_error"] = error_line(exc)
    # interleaved rounds, so a change in machine load hits every implementation alike
    samples = {name: [] for name in fns}
    for _ in range(args.rounds):
        for name, fn in fns.items():
            samples[name] += time_fn(fn, arg_sets, device, max(3, args.repeats // args.rounds), warmup,
                                     args.budget / args.rounds)
    for name in ("posefast", "eager", "compiled"):
        row[f"{name}_us"] = statistics.median(samples[name]) if samples.get(name) else None
        row[f"{name}_repeats"] = len(samples.get(name, []))
    row["graph_us"] = row["device_us"] = None
    if device.type == "cuda" and not args.no_graph:
        # the posefast op replayed from a CUDA graph: device time without the Python and
        # launch overhead (what the kernels cost inside a captured training step)
        try:
            row["graph_us"] = statistics.median(graph_replay_times(case.posefast, arg_sets, device, args.repeats,
                                                                   warmup, args.budget / args.rounds))
        except Exception as exc:
            row["graph_error"] = error_line(exc)
        # and its device time with the host's time hidden behind a spin kernel
        try:
            row["device_us"] = statistics.median(device_times(case.posefast, arg_sets, device, args.repeats, warmup,
                                                              args.budget / args.rounds,
                                                              lead_us=50 + 3 * row["posefast_us"]))
        except Exception as exc:
            row["device_error"] = error_line(exc)
    p = row["posefast_us"]
    row["speedup_vs_eager"] = row["eager_us"] / p if row["eager_us"] else None
    row["speedup_vs_compiled"] = row["compiled_us"] / p if row["compiled_us"] else None
    row["gbps"] = case.nbytes / (p * 1e-6) / 1e9
    row["pct_copy"] = 100.0 * row["gbps"] / copy_gbs if copy_gbs else None
    del arg_sets
    return row


def fmt(v, spec, missing="-"):
    return missing if v is None else format(v, spec)


def format_table(rows, copy_gbs):
    graph = any(r.get("graph_us") is not None for r in rows)
    device_col = any(r.get("device_us") is not None for r in rows)
    head = ["op", "dtype", "size", "eager us", "compiled us", "posefast us", "x eager", "x compiled", "GB/s",
            "% copy"] + (["graph us", "graph GB/s"] if graph else []) + (["device us", "device % copy"]
                                                                       if device_col else [])
    lines = [head]
    for r in rows:
        lines.append([r["op"], r["dtype"], r["size"], fmt(r["eager_us"], ".1f"), fmt(r["compiled_us"], ".1f"),
                      fmt(r["posefast_us"], ".1f"), fmt(r["speedup_vs_eager"], ".2f"),
                      fmt(r["speedup_vs_compiled"], ".2f"), fmt(r["gbps"], ".1f"), fmt(r["pct_copy"], ".0f")]
                     + ([fmt(r.get("graph_us"), ".1f"),
                         fmt(r["bytes"] / (r["graph_us"] * 1e-6) / 1e9 if r.get("graph_us") else None, ".1f")]
                        if graph else [])
                     + ([fmt(r.get("device_us"), ".1f"),
                         fmt(100 * r["bytes"] / (r["device_us"] * 1e-6) / 1e9 / copy_gbs
                             if r.get("device_us") and copy_gbs else None, ".0f")]
                        if device_col else []))
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(head))]
    out = []
    for n, line in enumerate(lines):
        cells = [str(c).ljust(widths[i]) if i < 3 else str(c).rjust(widths[i]) for i, c in enumerate(line)]
        out.append("| " + " | ".join(cells) + " |")
        if n == 0:
            out.append("|" + "|".join("-" * (w + 2) if i < 3 else "-" * (w + 1) + ":" for i, w in enumerate(widths))
                       + "|")
    out.append(f"\ncopy bandwidth: {copy_gbs:.1f} GB/s (read + write)")
    for r in rows:
        if r.get("compiled_error"):
            out.append(f"compile failed for {r['op']} {r['dtype']} {r['size']}: {r['compiled_error']}")
        if r.get("graph_error"):
            out.append(f"CUDA graph failed for {r['op']} {r['dtype']} {r['size']}: {r['graph_error']}")
        if r.get("device_error"):
            out.append(f"device time failed for {r['op']} {r['dtype']} {r['size']}: {r['device_error']}")
    return "\n".join(out)


def run_pose_loss(args, device, copy_gbs, dtypes_filter):
    """Fused vs unfused vs eager pose loss, forward + backward (pose_loss_bench.py)."""
    sizes = [parse_size(s, batch=128) for s in args.loss_sizes.split(",") if s]
    dtypes = [getattr(torch, d) for d in DTYPES["pose_loss"] if not dtypes_filter or d in dtypes_filter]
    return bench_pose_loss(device, sizes, dtypes, copy_gbs=copy_gbs, n_sets=2, rounds=args.rounds,
                           repeats=args.repeats, warmup=2, budget_s=args.budget)


# ------------------------------------------------------------------ --data / --train
def bench_data(args, device):
    """PoseLoader samples/s, augmented and plain, against the mmpose-style baseline
    (``benchmarks/mmpose_style_loader.py``, augmented) on the same persons: a synthetic set's,
    or those of ``--data-coco DIR``'s ``train.json``."""
    from posefast.data import AugmentConfig, CocoKeypoints, PoseLoader, benchmark_loader
    from posefast.train import synthetic_files

    if args.data_coco:
        ann_file, image_dir = os.path.join(args.data_coco, "train.json"), os.path.join(args.data_coco, "images")
        cache_dir = os.path.join(data_root(args), "coco_crop_cache")
    else:
        files = synthetic_files(data_root(args), args.data_images, 1, 0, 160)
        ann_file, image_dir = files["train_json"], files["image_dir"]
        cache_dir = os.path.join(data_root(args), "crop_cache")
    dataset = CocoKeypoints(ann_file, image_dir, input_size=(256, 192), cache_dir=cache_dir, progress=False)
    result = {"data": args.data_coco or f"synthetic, {args.data_images} images", "samples": len(dataset),
              "batch_size": args.data_batch, "input_size": [256, 192], "device": str(device),
              # below one epoch per measurement, every epoch start waits for its first batch
              "batches_per_epoch": len(dataset) // args.data_batch}
    loaders = {name: PoseLoader(dataset, args.data_batch, shuffle=True, drop_last=True, device=device, augment=augment,
                                output_stride=4) for name, augment in (("augmented", AugmentConfig()), ("plain", None))}
    workers = args.baseline_workers if args.baseline_workers > 0 else len(os.sched_getaffinity(0))
    baseline = None
    if args.baseline_workers:
        try:
            baseline = MmposeStyleBench(ann_file, image_dir, device, args.data_batch, workers)
        except Exception as exc:  # the loader's own numbers still count
            result["mmpose_style_error"] = error_line(exc)
            print(f"# mmpose-style baseline failed: {result['mmpose_style_error']}", flush=True)
    rounds = {name: [] for name in (*loaders, *(["mmpose_style"] if baseline else []))}
    try:  # the loaders take turns, round after round: a slow spell of the machine hits each alike
        for _ in range(args.data_rounds):
            for name, loader in loaders.items():
                rounds[name].append(benchmark_loader(loader, args.data_batches))
            if baseline is not None:
                try:
                    rounds["mmpose_style"].append(baseline.samples_per_s(args.data_batches))
                except Exception as exc:  # a worker died: keep the loader's rounds
                    result["mmpose_style_error"] = error_line(exc)
                    print(f"# mmpose-style baseline failed: {result['mmpose_style_error']}", flush=True)
                    baseline.close()
                    baseline = None
                    del rounds["mmpose_style"]
    finally:
        if baseline is not None:
            baseline.close()
    for name, rates in rounds.items():
        result[f"{name}_samples_per_s"] = statistics.median(rates)
        result[f"{name}_rounds"] = rates
    if baseline is not None:
        ratios = [a / b for a, b in zip(rounds["augmented"], rounds["mmpose_style"])]
        result.update(mmpose_style_workers=workers, augmented_vs_mmpose_style=statistics.median(ratios),
                      augmented_vs_mmpose_style_rounds=ratios)
    return result


def bench_train(args, device):
    """Training images/s on the same synthetic set as --data (generated once, cached)."""
    try:
        from posefast.train_benchmark import benchmark_training
    except ImportError:
        return {"error": "posefast.train_benchmark is not available in this tree"}
    if device.type == "cuda":
        kw = dict(batch_size=128, steps=20, warmup=5)
    else:
        kw = dict(batch_size=8, steps=3, warmup=1)
    return benchmark_training(input_size=(256, 192), device=str(device), num_images=args.data_images,
                              synthetic_root=data_root(args), cache_dir=os.path.join(data_root(args), "crop_cache"),
                              **kw)


def data_root(args):
    return args.data_root or os.path.join(REPO, ".cache", "bench_synthetic")


# ------------------------------------------------------------------ main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default=None, help="cuda or cpu (default: cuda if visible, else cpu)")
    ap.add_argument("--ops", default=",".join(ALL_OPS), help=f"comma list of {ALL_OPS}")
    ap.add_argument("--sizes", default=",".join(DEFAULT_SIZES), help="comma list of HxW (B=64) or B:HxW")
    ap.add_argument("--loss-sizes", default=",".join(DEFAULT_LOSS_SIZES),
                    help="pose_loss sizes, comma list of B:HxW (B=128 if omitted)")
    ap.add_argument("--dtypes", default="", help="only these dtypes (e.g. float32)")
    ap.add_argument("--repeats", type=int, default=200, help="most timed repeats per measurement")
    ap.add_argument("--budget", type=float, default=None, help="seconds of timed calls per measurement")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds of posefast/eager/compiled")
    ap.add_argument("--max-sets", type=int, default=8, help="most rotated input sets per row")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile reference")
    ap.add_argument("--no-eager", action="store_true", help="skip the eager reference")
    ap.add_argument("--no-graph", action="store_true",
                    help="CUDA: skip the CUDA-graph replay and device-time columns of the posefast op")
    ap.add_argument("--quick", action="store_true",
                    help="seconds, not minutes: 64x48 only (unless --sizes), 1 round, few repeats, no torch.compile")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads on CPU")
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--data", action="store_true", help="also benchmark the PoseLoader (samples/s)")
    ap.add_argument("--data-only", action="store_true", help="only the --data benchmark")
    ap.add_argument("--data-images", type=int, default=64,
                    help="synthetic training images for --data and --train (about 1.4 people each)")
    ap.add_argument("--data-batch", type=int, default=32)
    ap.add_argument("--data-batches", type=int, default=8)
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--data-coco", default=None,
                    help="--data on this COCO keypoints folder's train.json and images/ instead of a synthetic set")
    ap.add_argument("--baseline-workers", type=int, default=-1,
                    help="DataLoader workers of --data's mmpose-style baseline (-1: one per CPU core; 0: skip it)")
    ap.add_argument("--data-rounds", type=int, default=3,
                    help="--data: rounds in which each loader is timed in turn (medians reported)")
    ap.add_argument("--train", action="store_true", help="also benchmark training images/s")
    args = ap.parse_args(argv)
    if args.data_rounds < 1:
        ap.error(f"--data-rounds must be >= 1, got {args.data_rounds}")

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.repeats = min(args.repeats, 30)
        args.no_compile = True
        if args.sizes == ",".join(DEFAULT_SIZES):
            args.sizes = "64x48"
        if args.loss_sizes == ",".join(DEFAULT_LOSS_SIZES):
            args.loss_sizes = DEFAULT_LOSS_SIZES[0]
        args.max_sets = min(args.max_sets, 2)
        args.rounds = 1
    if args.budget is None:
        args.budget = 0.3 if args.quick else 1.5
    ops = [o for o in args.ops.split(",") if o]
    for op in ops:
        if op not in ALL_OPS:
            ap.error(f"unknown op {op!r}; choose from {ALL_OPS}")
    sizes = [parse_size(s) for s in args.sizes.split(",") if s]
    dtypes_filter = [d for d in args.dtypes.split(",") if d]

    meta = {"command": "python " + " ".join([os.path.relpath(__file__, REPO)] + (argv if argv is not None else
                                                                                  sys.argv[1:])),
            "device": device_name(device), "device_type": device.type, "torch": torch.__version__,
            "cuda": torch.version.cuda if device.type == "cuda" else None,
            "threads": torch.get_num_threads(), "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "python": platform.python_version(),
            "loadavg_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
            "cpu_allocator": steady_cpu_allocator(), "cpu_simd": cpu_simd()}
    result = {"meta": meta, "rows": []}
    print(f"# posefast benchmarks on {meta['device']}, torch {meta['torch']}, {meta['date']}", flush=True)

    def dump():
        if args.json:
            os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
            with open(args.json, "w") as f:
                json.dump(result, f, indent=1)

    if not args.data_only:
        copy_bytes = (256 << 20) if device.type == "cuda" or not args.quick else (64 << 20)
        copy_gbs = copy_bandwidth(device, copy_bytes, args.repeats, args.budget)
        meta["copy_gbps"] = copy_gbs
        meta["copy_bytes"] = copy_bytes
        print(f"# copy bandwidth {copy_gbs:.1f} GB/s ({copy_bytes >> 20} MiB device-to-device, read + write)",
              flush=True)
        try:
            meta["launch_floor"] = launch_floor(device, args.repeats, args.budget)
            print("# launch floor (one-float zero_, a trivial native op): "
                  + ", ".join(f"{k} {v:.1f}" for k, v in meta["launch_floor"].items()), flush=True)
        except Exception as exc:  # diagnostic only: keep benchmarking
            meta["launch_floor_error"] = error_line(exc)
            print(f"# launch floor failed: {meta['launch_floor_error']}", flush=True)
        for case in build_cases(ops, sizes, device, dtypes_filter):
            row = run_case(case, device, args, copy_gbs)
            result["rows"].append(row)
            print(f"  {row['op']:<20} {row['dtype']:<9} {row['size']:<13} eager {fmt(row['eager_us'], '9.1f')}  "
                  f"compiled {fmt(row['compiled_us'], '9.1f')}  posefast {row['posefast_us']:9.1f} us", flush=True)
            dump()
        print()
        if result["rows"]:
            print(format_table(result["rows"], copy_gbs))
        if "pose_loss" in ops:
            result["pose_loss"] = run_pose_loss(args, device, copy_gbs, dtypes_filter)
            print("\npose_loss forward + backward: fused vs unfused posefast ops vs eager reference "
                  "(floor: logits read twice + gradient written once)")
            print(format_rows(result["pose_loss"]))
        dump()
    if args.data or args.data_only:
        result["data"] = bench_data(args, device)
        print(f"\n# data: {json.dumps(result['data'])}", flush=True)
        dump()  # kept even if the training benchmark below is cut short
    if args.train:
        result["train"] = bench_train(args, device)
        print(f"\n# train: {json.dumps(result['train'])}", flush=True)
    if hasattr(os, "getloadavg"):
        meta["loadavg_at_end"] = os.getloadavg()
    dump()
    return 0


if __name__ == "__main__":
    sys.exit(main())
