"""Training throughput: images/s of SimplePoseNet end to end (loader + step), of the model
alone and of the loader alone (``python benchmarks/run.py --train``)."""
from __future__ import annotations

import time
import warnings

import torch

from posefast.losses import PoseLoss
from posefast.models import SimplePoseNet
from posefast.train import synthetic_files, train_step


def benchmark_training(batch_size: int = 128, input_size: tuple[int, int] = (256, 192), steps: int = 20,
                       warmup: int = 5, device: str = "auto", amp: bool = True, channels_last: bool = True,
                       compile: bool = False, num_images: int = 256, synthetic_root: str = "",
                       cache_dir: str = "", fused_loss: bool = True, cudnn_benchmark: bool = True,
                       only_model: bool = False) -> dict:
    """Training images/s of SimplePoseNet, end to end vs model only.

    ``end_to_end_images_per_s``: the whole step as ``train`` runs it: ``PoseLoader`` (gather,
    augmentation warp, normalisation, target rendering unless the loss is fused) + forward +
    dual loss + backward + AdamW step. ``model_only_images_per_s``: the same step repeated on
    one batch already resident on the device. ``loader_only_images_per_s``: the loader's
    batches alone, no step. Each times ``steps`` steps (batches) after ``warmup`` and waits
    for the device. On CUDA also ``end_to_end_same_stream_images_per_s`` (the loader's
    ``side_stream=False``: crops copied on the training stream) and
    ``model_only_cudnn_heuristics_images_per_s`` (``torch.backends.cudnn.benchmark`` off; the
    others run with ``cudnn_benchmark``, as ``train`` does). End to end near
    ``1 / (1/model + 1/loader)`` means the two do not overlap. The data is the synthetic set
    (``num_images`` training images, generated on first use under ``synthetic_root``); with
    fewer than ``warmup + steps`` batches per epoch (``batches_per_epoch``), every epoch
    start, which waits for its first batch, is timed too.
    """
    from posefast.data import AugmentConfig, CocoKeypoints, PoseLoader
    from posefast.data.synthetic import default_synthetic_root
    from posefast.distributed import pick_device

    dev = pick_device(device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = cudnn_benchmark
    files = synthetic_files(synthetic_root or default_synthetic_root(), num_images, 1, 0, 160)
    dataset = CocoKeypoints(files["train_json"], files["image_dir"], input_size=input_size,
                            cache_dir=cache_dir or None, progress=False)
    model = SimplePoseNet(pretrained="none").to(dev)
    cl = channels_last and dev.type == "cuda"
    amp = amp and dev.type == "cuda"  # the benchmark's CPU rows stay float32
    if cl:
        model = model.to(memory_format=torch.channels_last)
    net = torch.compile(model) if compile else model
    loss_fn = PoseLoss(fused=fused_loss).to(dev)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def make_loader(side_stream=True):
        return PoseLoader(dataset, batch_size, shuffle=True, drop_last=len(dataset) >= batch_size, device=dev,
                          augment=AugmentConfig(), output_stride=model.output_stride, render_targets=not fused_loss,
                          side_stream=side_stream)

    loader = make_loader()

    def batches(source=loader):
        epoch = 0
        while True:
            source.set_epoch(epoch)
            yield from source
            epoch += 1

    def timed(source, step: bool = True) -> float:
        count = 0
        for i in range(warmup + steps):
            if i == warmup:
                if dev.type == "cuda":
                    torch.cuda.synchronize(dev)
                start, count = time.perf_counter(), 0
            batch = next(source)
            if step:
                train_step(net, loss_fn, optimizer, batch, amp=amp, channels_last=cl, grad_clip=1.0)
            count += len(batch)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        return count / (time.perf_counter() - start)

    if only_model:  # the model alone (run.py's heuristics A/B runs this in a process of its own)
        stream = batches()
        fixed = next(stream)
        stream.close()
        return {"model_only_images_per_s": timed(iter(lambda: fixed, None)), "batch_size": batch_size,
                "cudnn_benchmark": cudnn_benchmark and dev.type == "cuda"}
    stream = batches()
    end_to_end = timed(stream)
    fixed = next(stream)
    stream.close()
    model_only = timed(iter(lambda: fixed, None))
    stream = batches()
    loader_only = timed(stream, step=False)
    stream.close()
    extra = {}
    if dev.type == "cuda":  # the same end to end with the crops copied on the training stream
        stream = batches(make_loader(side_stream=False))
        extra["end_to_end_same_stream_images_per_s"] = timed(stream)
        stream.close()
        # and the model alone with cuDNN's heuristics, in a process of its own (see below)
        extra["model_only_cudnn_heuristics_images_per_s"] = model_only_in_fresh_process(
            batch_size=batch_size, input_size=input_size, steps=steps, warmup=warmup, device=str(dev), amp=amp,
            channels_last=channels_last, compile=compile, num_images=num_images, synthetic_root=synthetic_root,
            cache_dir=cache_dir, fused_loss=fused_loss, cudnn_benchmark=False)
    return {"end_to_end_images_per_s": end_to_end, "model_only_images_per_s": model_only,
            "loader_only_images_per_s": loader_only, **extra, "batches_per_epoch": len(loader),
            "batch_size": batch_size, "input_size": list(input_size), "device": str(dev),
            "amp": amp, "channels_last": cl, "compile": compile, "steps": steps,
            "cudnn_benchmark": cudnn_benchmark and dev.type == "cuda"}


def model_only_in_fresh_process(**settings) -> float | None:
    """``benchmark_training(only_model=True, **settings)``'s images/s, measured in a spawned
    process: cuDNN keeps the convolution plans it picked per process, looked up before (and
    keyed without) ``torch.backends.cudnn.benchmark``, so a heuristics run after benchmarked
    ones in the same process would reuse the benchmarked plans. None (with a warning) if the
    process fails: this number is a side measurement."""
    result = in_fresh_process("model-only benchmark", benchmark_training, **settings, only_model=True)
    return None if result is None else result["model_only_images_per_s"]


def in_fresh_process(what: str, fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` in a spawned process; None (with a warning naming ``what``) if it
    raises or the process dies (a crash, the OOM killer): ``ProcessPoolExecutor`` reports a
    dead worker, where ``multiprocessing.Pool.apply`` would wait for its result forever."""
    import concurrent.futures
    import multiprocessing

    try:
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            return pool.submit(fn, *args, **kwargs).result()
    except Exception as exc:  # noqa: BLE001 - any failure of the side process is reported, not raised
        warnings.warn(f"{what} in a fresh process failed: {exc!r}")
        return None
