"""Measuring how many samples per second a ``PoseLoader`` delivers."""
import time

import torch


def benchmark_loader(loader, num_batches, warmup=2):
    """Samples/s over ``num_batches`` batches after ``warmup`` batches (cycling epochs if needed).

    Counts the whole pipeline (gather, transfer, warp, normalise, targets) and waits for the
    device at the end, so asynchronous CUDA work is included.
    """
    def synchronize():
        if loader.device.type == "cuda":
            torch.cuda.synchronize(loader.device)

    def batches():
        epoch = loader.epoch
        while True:
            yield from loader
            epoch += 1
            loader.set_epoch(epoch)

    stream = batches()
    for _ in range(warmup):
        next(stream)
    synchronize()
    start, samples = time.perf_counter(), 0
    for _ in range(num_batches):
        samples += len(next(stream))
    synchronize()
    elapsed = time.perf_counter() - start
    stream.close()
    return samples / elapsed
