"""Decoding one image file strictly: missing, corrupt or truncated files raise ``BadInputError``."""
import os

import numpy as np
from PIL import Image

from posefast.data.bad_input import BadInputError


def decode_image(path, expected_size=None):
    """Decode ``path`` into an RGB ``uint8`` array ``[H, W, 3]``.

    EXIF orientation is ignored (COCO coordinates refer to the stored pixel orientation).
    A truncated or corrupt file raises instead of returning a partly grey image, and so
    does an image whose size differs from ``expected_size`` ``(width, height)``.
    """
    if not os.path.isfile(path):
        raise BadInputError(f"image file not found: {path}", "missing_image")
    try:
        with Image.open(path) as image:
            image.load()  # raises OSError on truncated data (LOAD_TRUNCATED_IMAGES is off)
            array = np.asarray(image.convert("RGB"))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise BadInputError(f"corrupt or truncated image {path}: {error}", "corrupt_image") from None
    if expected_size is not None and (array.shape[1], array.shape[0]) != tuple(expected_size):
        raise BadInputError(
            f"image {path} is {array.shape[1]}x{array.shape[0]}, the annotations say "
            f"{expected_size[0]}x{expected_size[1]}", "image_size_mismatch")
    return array
