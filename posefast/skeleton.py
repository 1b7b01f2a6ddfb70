"""The COCO 17-keypoint skeleton: joint names, left/right flip pairs, limb edges and
default per-joint loss weights.

Every module that needs to know what joint ``k`` is imports it from here, so the order
below (the COCO order) is the single source of truth.
"""

NUM_KEYPOINTS = 17

KEYPOINT_NAMES = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)

# (left, right) index pairs that swap under a horizontal flip.
FLIP_PAIRS = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))


def _flip_index():
    index = list(range(NUM_KEYPOINTS))
    for left, right in FLIP_PAIRS:
        index[left], index[right] = right, left
    return index


# Permutation: after a horizontal flip, output joint k takes the keypoint of joint FLIP_INDEX[k].
FLIP_INDEX = _flip_index()

# 0-based limb edges (the standard COCO skeleton, converted from its 1-based form).
SKELETON = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
    (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)

# Joints with more error tend to be the extremities: weight them up in the loss.
DEFAULT_JOINT_WEIGHTS = (
    1.0, 1.0, 1.0, 1.0, 1.0,  # face
    1.0, 1.0,  # shoulders
    1.2, 1.2,  # elbows
    1.5, 1.5,  # wrists
    1.0, 1.0,  # hips
    1.2, 1.2,  # knees
    1.5, 1.5,  # ankles
)

# Joints of the upper / lower body (used by half-body augmentation).
UPPER_BODY_JOINTS = tuple(range(0, 11))
LOWER_BODY_JOINTS = tuple(range(11, 17))

assert len(KEYPOINT_NAMES) == NUM_KEYPOINTS and len(DEFAULT_JOINT_WEIGHTS) == NUM_KEYPOINTS
