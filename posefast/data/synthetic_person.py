"""Procedural people for the synthetic dataset: a 17-joint kinematic skeleton in COCO order,
drawn as thick, distinctly coloured limbs over a textured, cluttered background.

Colours carry the left/right information: every limb segment has its own base colour
(jittered per person), so a detector can tell a left wrist from a right one even when the
person faces away.
"""
import math

import cv2
import numpy as np

# Base RGB colour of each drawn part (jittered per person).
PART_COLORS = {
    "left_upper_arm": (230, 40, 40), "left_forearm": (255, 150, 0), "left_hand": (255, 240, 0),
    "right_upper_arm": (40, 70, 235), "right_forearm": (0, 200, 255), "right_hand": (150, 255, 255),
    "left_thigh": (190, 0, 190), "left_shin": (255, 110, 210), "left_foot": (120, 0, 60),
    "right_thigh": (0, 150, 60), "right_shin": (120, 235, 90), "right_foot": (0, 80, 80),
    "nose": (255, 0, 0), "left_eye": (255, 255, 255), "right_eye": (0, 0, 0),
    "left_ear": (255, 80, 160), "right_ear": (80, 255, 160),
}
# (part, joint a, joint b, thickness as a fraction of body height)
LIMBS = (
    ("left_thigh", 11, 13, 0.065), ("left_shin", 13, 15, 0.055),
    ("right_thigh", 12, 14, 0.065), ("right_shin", 14, 16, 0.055),
    ("left_upper_arm", 5, 7, 0.05), ("left_forearm", 7, 9, 0.042),
    ("right_upper_arm", 6, 8, 0.05), ("right_forearm", 8, 10, 0.042),
)
ENDS = (("left_hand", 9, 0.035), ("right_hand", 10, 0.035), ("left_foot", 15, 0.04), ("right_foot", 16, 0.04))


def _rotate(vector, degrees):
    a = math.radians(degrees)
    return np.array([vector[0] * math.cos(a) - vector[1] * math.sin(a), vector[0] * math.sin(a) + vector[1] * math.cos(a)])


def sample_pose(rng, height, hip_center, facing_front):
    """Joint positions ``[17, 2]`` of a person of body ``height`` px with hips at ``hip_center``.

    Facing the camera, the person's left side is on the image right (+x).
    """
    side = 1.0 if facing_front else -1.0  # image x direction of the person's left side
    lean = rng.uniform(-12, 12)
    up = _rotate((0.0, -1.0), lean)
    across = _rotate((1.0, 0.0), lean)
    hip = np.zeros(2)
    neck = hip + up * 0.30 * height
    joints = np.zeros((17, 2))
    joints[5], joints[6] = neck + across * side * 0.11 * height, neck - across * side * 0.11 * height
    joints[11], joints[12] = hip + across * side * 0.08 * height, hip - across * side * 0.08 * height
    head_up = _rotate(up, rng.uniform(-15, 15))
    head_across = _rotate(head_up, 90)
    nose = neck + head_up * 0.11 * height
    joints[0] = nose
    joints[1], joints[2] = (nose + head_up * 0.03 * height + head_across * side * s * 0.03 * height for s in (1, -1))
    joints[3], joints[4] = (nose + head_up * 0.01 * height + head_across * side * s * 0.065 * height for s in (1, -1))
    for sign, (shoulder, elbow, wrist) in ((1, (5, 7, 9)), (-1, (6, 8, 10))):
        outward = side * sign  # image-x sign pointing away from the body on this side
        upper = _rotate((0.0, 1.0), -outward * rng.uniform(-20, 160) + lean)
        joints[elbow] = joints[shoulder] + upper * 0.17 * height
        joints[wrist] = joints[elbow] + _rotate(upper, rng.choice((-1, 1)) * rng.uniform(0, 140)) * 0.15 * height
    for sign, (hip_joint, knee, ankle) in ((1, (11, 13, 15)), (-1, (12, 14, 16))):
        outward = side * sign
        thigh = _rotate((0.0, 1.0), -outward * rng.uniform(-15, 45) + lean)
        joints[knee] = joints[hip_joint] + thigh * 0.24 * height
        joints[ankle] = joints[knee] + _rotate(thigh, rng.choice((-1, 1)) * rng.uniform(0, 90)) * 0.23 * height
    spin = rng.uniform(-20, 20)
    joints = np.stack([_rotate(j, spin) for j in joints]) + np.asarray(hip_center, dtype=np.float64)
    return joints


def _jitter(rng, color, amount=25):
    return tuple(int(c) for c in np.clip(np.asarray(color) + rng.integers(-amount, amount + 1, 3), 0, 255))


def draw_person(image, joints, height, facing_front, rng):
    """Draw one person onto ``image`` (RGB uint8, in place); return its drawn extent (x0, y0, x1, y1)."""
    shift = 4
    scale = 1 << shift

    def pt(p):
        return tuple(int(round(v * scale)) for v in p)

    def thick(fraction):
        return max(2, int(round(fraction * height)))

    torso = np.stack([joints[5], joints[6], joints[12], joints[11]])
    cv2.fillConvexPoly(image, np.round(torso * scale).astype(np.int32), _jitter(rng, rng.integers(60, 200, 3), 0),
                       cv2.LINE_AA, shift)
    for part, a, b, width in LIMBS:
        cv2.line(image, pt(joints[a]), pt(joints[b]), _jitter(rng, PART_COLORS[part]), thick(width), cv2.LINE_AA, shift)
    for part, joint, radius in ENDS:
        cv2.circle(image, pt(joints[joint]), thick(radius) * scale, _jitter(rng, PART_COLORS[part]), -1, cv2.LINE_AA, shift)
    head_center = (joints[3] + joints[4]) / 2 * 0.5 + joints[0] * 0.5
    skin = _jitter(rng, (225, 180, 140), 30) if facing_front else _jitter(rng, (70, 45, 30), 20)
    cv2.circle(image, pt(head_center), thick(0.085) * scale, skin, -1, cv2.LINE_AA, shift)
    for joint, part in ((3, "left_ear"), (4, "right_ear")):
        cv2.circle(image, pt(joints[joint]), thick(0.022) * scale, _jitter(rng, PART_COLORS[part], 15), -1, cv2.LINE_AA, shift)
    if facing_front:
        for joint, part in ((0, "nose"), (1, "left_eye"), (2, "right_eye")):
            cv2.circle(image, pt(joints[joint]), thick(0.016) * scale, PART_COLORS[part], -1, cv2.LINE_AA, shift)
    pad = 0.09 * height
    return (*(joints.min(0) - pad), *(joints.max(0) + pad))


def draw_background(rng, size_hw):
    """A muted, textured, cluttered RGB background ``uint8 [H, W, 3]``."""
    height, width = size_hw
    coarse = rng.uniform(40, 200, (4, 4, 3)).astype(np.float32)
    image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    gray = image.mean(2, keepdims=True)
    image = 0.35 * image + 0.65 * gray  # desaturate: keep the people's colours distinctive
    for _ in range(rng.integers(8, 20)):
        base = rng.uniform(30, 220)
        color = tuple(float(base + d) for d in rng.uniform(-25, 25, 3))
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        kind = rng.integers(3)
        if kind == 0:
            w, h = rng.uniform(5, width / 3), rng.uniform(5, height / 3)
            cv2.rectangle(image, (int(x), int(y)), (int(x + w), int(y + h)), color, -1)
        elif kind == 1:
            cv2.circle(image, (int(x), int(y)), int(rng.uniform(3, width / 8)), color, -1)
        else:
            end = (int(rng.uniform(0, width)), int(rng.uniform(0, height)))
            cv2.line(image, (int(x), int(y)), end, color, int(rng.integers(1, 4)))
    image += rng.normal(0, 6, image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def draw_occluder(image, rng, extent):
    """Draw a muted box over part of a person's ``extent``; returns its (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = extent
    w, h = (x1 - x0) * rng.uniform(0.3, 0.6), (y1 - y0) * rng.uniform(0.2, 0.35)
    left, top = rng.uniform(x0, x1 - w), rng.uniform(y0, y1 - h)
    base = rng.uniform(60, 180)
    color = tuple(float(base + d) for d in rng.uniform(-15, 15, 3))
    cv2.rectangle(image, (int(left), int(top)), (int(left + w), int(top + h)), color, -1)
    return left, top, left + w, top + h
