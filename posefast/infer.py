"""Run a checkpoint on your own pictures: ``python -m posefast.infer --checkpoint RUN/best.pt --input PATH|0
[--boxes BOXES.json] [--output OUT]``.

``--input``: an image, a folder of images, a video file, or a webcam index. Without
``--boxes`` each whole frame is one person (the ``image`` protocol: the frame letterboxed
to the network input); with COCO-format person boxes, one top-down crop per box (padding
1.25, as in training). Writes into ``--output`` (a folder, default ``posefast_infer``) the
pictures with skeletons drawn (same file names; ``<name>_pose.mp4`` for video and webcam)
and ``predictions.json`` in COCO results format (plus ``file_name`` and ``box``), and
prints the frame rate. Frames and persons are batched (``--batch`` frames per forward
pass); on CUDA the network throughput is reported too.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import cv2
import numpy as np
import torch
from tqdm import tqdm

from posefast.checkpoint import CheckpointError, load_trained_model
from posefast.coco_results import coco_results, write_json
from posefast.command_line import dashed_options
from posefast.data.geometry import box_to_center_size, crop_affine, invert_affine, invert_keypoints
from posefast.data.normalize import normalize_images
from posefast.data.warp import warp_images
from posefast.flip_test import predict_heatmaps
from posefast.infer_sources import InferInputError, Source, UnreadableImageError, load_boxes
from posefast.models.decode import DECODERS, decode, joint_confidence
from posefast.visualize import DRAW_LIMIT_PX, draw_skeleton

TOPDOWN_PADDING = 1.25


def person_boxes(frame, boxes):
    """``(xywh [P, 4], scores [P], whole_frame)`` for one frame: its boxes (by ``image_id``),
    or without ``boxes`` the whole frame."""
    if boxes is None:
        height, width = frame.image.shape[:2]
        return np.array([[-0.5, -0.5, width, height]]), np.ones(1), True
    found = boxes.get(frame.image_id, [])
    return np.array([b for b, _ in found]).reshape(-1, 4), np.array([s for _, s in found]), False


def crop_persons(image, xywh, input_size, padding, device="cpu"):
    """Crops ``float32 [P, 3, H, W]`` (0..255) of the boxes ``xywh [P, 4]`` of an RGB uint8
    image, each grown to the input aspect and scaled by ``padding``, and their
    original->input affines ``[P, 2, 3]`` (float64, CPU), as the training data cuts them."""
    height, width = input_size
    center, size = box_to_center_size(xywh, width / height, padding)
    affine = crop_affine(center, size, (height, width))
    source = torch.tensor(image, device=device)[None].expand(len(affine), -1, -1, -1)
    return warp_images(source, invert_affine(affine), (height, width)), affine


class PoseRunner:
    """A loaded checkpoint that turns frames (+ optional boxes) into keypoints in frame px."""

    def __init__(self, checkpoint, device, decoder="soft_argmax", flip=False):
        self.model, self.cfg, _ = load_trained_model(checkpoint, device)
        self.device, self.decoder, self.flip = torch.device(device), decoder, flip
        self.network_s, self.persons = 0.0, 0

    def __call__(self, frames, boxes=None):
        """Per frame ``(keypoints [P, 17, 2], joint_conf [P, 17], xywh [P, 4], box_scores [P])``."""
        height, width = self.cfg.input_size
        crops, affines, layout = [], [], []
        for frame in frames:
            xywh, scores, whole = person_boxes(frame, boxes)
            layout.append((xywh, scores))
            if len(xywh) == 0:
                continue
            crop, affine = crop_persons(frame.image, xywh, (height, width), 1.0 if whole else TOPDOWN_PADDING,
                                        self.device)
            crops.append(crop)
            affines.append(affine)
        if not crops:
            return [(np.zeros((0, 17, 2)), np.zeros((0, 17)), xywh, scores) for xywh, scores in layout]
        start = self._sync_time()
        logits = predict_heatmaps(self.model, normalize_images(torch.cat(crops)), self.flip)
        pred = decode(logits, self.model.output_stride, self.decoder, self.cfg.beta)
        conf = joint_confidence(logits, self.cfg.loss)
        self.network_s += self._sync_time() - start
        self.persons += len(pred)
        points = invert_keypoints(pred.cpu().double(), torch.cat(affines)).numpy()
        conf, out, at = conf.cpu().numpy(), [], 0
        for xywh, scores in layout:
            out.append((points[at:at + len(xywh)], conf[at:at + len(xywh)], xywh, scores))
            at += len(xywh)
        return out

    def _sync_time(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()


def draw(frame, keypoints, conf, xywh, threshold, show_boxes):
    """The frame with every person's skeleton (joints with confidence >= threshold) drawn."""
    image = frame.image
    scale = max(1, round(min(image.shape[:2]) / 200))
    for points, c, box in zip(keypoints, conf, xywh):
        if show_boxes:
            x0, y0, x1, y1 = np.clip([box[0], box[1], box[0] + box[2], box[1] + box[3]], -DRAW_LIMIT_PX, DRAW_LIMIT_PX)
            image = cv2.rectangle(image.copy(), (round(x0), round(y0)), (round(x1), round(y1)), (255, 255, 0), scale)
        image = draw_skeleton(image, points, c >= threshold, radius=2 * scale, thickness=scale)
    return image


class Writer:
    """Where drawn frames go: image files (same names) or one ``<name>_pose.mp4``."""

    def __init__(self, source, out_dir):
        self.source, self.out_dir, self.video, self.paths = source, out_dir, None, []
        if source.kind in ("image", "folder"):
            inputs = source.spec if source.kind == "folder" else os.path.dirname(os.path.abspath(source.spec))
            if os.path.realpath(out_dir) == os.path.realpath(inputs):
                raise InferInputError(f"output folder {out_dir} holds the input images: their drawn copies would "
                                      "overwrite them; choose another --output")
        os.makedirs(out_dir, exist_ok=True)

    def write(self, frame, image_rgb):
        bgr = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)
        if self.source.kind in ("image", "folder"):
            path = os.path.join(self.out_dir, frame.name)
            if not cv2.imwrite(path, bgr):
                raise InferInputError(f"cannot write {path}")
            self.paths.append(path)
            return
        if self.video is None:
            path = os.path.join(self.out_dir, f"{self.source.name}_pose.mp4")
            size = (bgr.shape[1], bgr.shape[0])
            self.video = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), self.source.fps or 25.0, size)
            if not self.video.isOpened():
                raise InferInputError(f"cannot write video {path}")
            self.paths.append(path)
        self.video.write(bgr)

    def close(self):
        if self.video is not None:
            self.video.release()


def run_inference(checkpoint, input_spec, output="posefast_infer", boxes_file=None, device="auto", batch=None,
                  decoder="soft_argmax", flip=False, draw_threshold=0.3, min_box_score=0.0, max_frames=None,
                  progress=True, skip_bad=False) -> dict:
    """Run on every frame of ``input_spec``; writes the drawn frames and ``predictions.json``
    into ``output`` and returns a summary (counts, timings, frames/s, output paths, the images
    skipped as unreadable with ``skip_bad``). Without ``skip_bad`` an unreadable image stops
    the run with its path named, after the frames before it are written."""
    from posefast.distributed import pick_device

    dev = pick_device(device)
    runner = PoseRunner(checkpoint, dev, decoder, flip)
    boxes, names = load_boxes(boxes_file, min_box_score) if boxes_file else (None, None)
    source = Source(input_spec, max_frames, skip_bad)
    batch = batch or (16 if dev.type == "cuda" else 4)
    writer, results, frames_done, chunk = Writer(source, output), [], 0, []
    start = time.perf_counter()

    def flush():
        for frame, (points, conf, xywh, scores) in zip(chunk, runner(chunk, boxes)):
            writer.write(frame, draw(frame, points, conf, xywh, draw_threshold, boxes is not None))
            if len(points):
                results.extend(coco_results([frame.image_id] * len(points), points, conf, conf.mean(1) * scores,
                                            file_name=[frame.name] * len(points), box=[b.tolist() for b in xywh]))
        chunk.clear()

    bar = tqdm(desc=f"posefast.infer {source.kind}", unit="frame", disable=not progress, leave=False)
    try:
        for frame in source:
            frame.image_id = names.get(frame.name, frame.image_id) if names else frame.image_id
            chunk.append(frame)
            frames_done += 1
            bar.update()
            if len(chunk) == batch:
                flush()
        if chunk:
            flush()
    except KeyboardInterrupt:
        flush()  # keep what was read before Ctrl-C
    except UnreadableImageError as exc:  # keep the frames before it
        flush()
        write_json(results, os.path.join(output, "predictions.json"))
        raise InferInputError(f"{exc} (the {frames_done} frame(s) before it are written to {output}; --skip-bad "
                              "skips and counts unreadable images)") from None
    finally:
        bar.close()
        writer.close()
    if frames_done == 0 and source.skipped:
        raise InferInputError(f"no image of {input_spec} could be read: {'; '.join(source.skipped[:3])}")
    elapsed = time.perf_counter() - start
    predictions = write_json(results, os.path.join(output, "predictions.json"))
    return {"kind": source.kind, "frames": frames_done, "persons": runner.persons, "seconds": elapsed,
            "frames_per_s": frames_done / elapsed if elapsed > 0 else float("inf"),
            "network_persons_per_s": runner.persons / runner.network_s if runner.network_s > 0 else float("inf"),
            "device": str(dev), "batch_frames": batch, "protocol": "topdown (boxes)" if boxes_file else "image",
            "outputs": writer.paths, "predictions": predictions, "skipped": source.skipped,
            "exif_rotated": source.exif_rotated}


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m posefast.infer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--input", required=True, help="image, folder of images, video file, or webcam index (0)")
    parser.add_argument("--boxes", default=None, help="COCO-format person boxes (detections or a dataset JSON)")
    parser.add_argument("--output", default="posefast_infer", help="output folder")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=None, help="frames per forward pass (default: 16 CUDA, 4 CPU)")
    parser.add_argument("--decoder", choices=DECODERS, default="soft_argmax")
    parser.add_argument("--flip", action="store_true", help="flip test (average with the mirrored image)")
    parser.add_argument("--draw-threshold", type=float, default=0.3,
                        help="draw joints with confidence >= this")
    parser.add_argument("--min-box-score", type=float, default=0.0)
    parser.add_argument("--max-frames", type=int, default=None,
                        help="stop after this many frames (video, webcam)")
    parser.add_argument("--skip-bad", action="store_true",
                        help="skip and count images that cannot be decoded instead of stopping at the first")
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(dashed_options(argv))


def main(argv=None) -> int:
    """Command-line entry point; bad input is one line on stderr and exit status 2."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        summary = run_inference(args.checkpoint, args.input, args.output, args.boxes, args.device, args.batch,
                                args.decoder, args.flip, args.draw_threshold, args.min_box_score, args.max_frames,
                                not args.no_progress, args.skip_bad)
    except (InferInputError, CheckpointError, RuntimeError) as exc:
        print(f"posefast.infer: error: {exc}", file=sys.stderr)
        return 2
    network = (f"; network {summary['network_persons_per_s']:.1f} persons/s on {summary['device']}"
               if summary["persons"] else "")
    print(f"posefast.infer: {summary['frames']} frames ({summary['kind']}, {summary['protocol']} protocol), "
          f"{summary['persons']} persons in {summary['seconds']:.2f} s: {summary['frames_per_s']:.1f} frames/s "
          f"end to end (batches of {summary['batch_frames']} frames){network}")
    if summary["exif_rotated"]:
        print(f"posefast.infer: {len(summary['exif_rotated'])} image(s) carry an EXIF orientation other than "
              f"upright (e.g. {summary['exif_rotated'][0]}): they are drawn and predicted on their stored pixels")
    if summary["skipped"]:
        print(f"posefast.infer: skipped {len(summary['skipped'])} unreadable image(s): "
              + "; ".join(summary["skipped"][:3]) + (" ..." if len(summary["skipped"]) > 3 else ""))
    print(f"wrote {summary['predictions']} and {len(summary['outputs'])} picture/video file(s) in "
          f"{os.path.dirname(summary['predictions'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
