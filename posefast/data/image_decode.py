"""Decoding one image file strictly: missing, corrupt or truncated files raise ``BadInputError``."""
import os

import numpy as np
from PIL import Image

from posefast.data.bad_input import BadInputError


EXIF_ORIENTATION = 0x0112  # the tag; 1 = stored upright, 5-8 = turned a quarter
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def rgb8(image):
    """RGB ``uint8`` ``[H, W, 3]`` of a PIL image; 16-bit (and 32-bit integer) grey is scaled
    from 0..65535 to 0..255 (PIL's own conversion would clip it to white)."""
    if image.mode in SIXTEEN_BIT_MODES:
        grey = np.clip(np.rint(np.asarray(image, dtype=np.float64) / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if image.mode == "F":
        raise ValueError("floating-point pixels (mode F) have no defined 8-bit range")
    return np.asarray(image.convert("RGB"))


def decode_image(path, expected_size=None, exif_rotated=None):
    """Decode ``path`` into an RGB ``uint8`` array ``[H, W, 3]``.

    EXIF orientation is ignored, as COCO does: coordinates refer to the stored pixels. The
    path of an image whose orientation tag is not "upright" is appended to the list
    ``exif_rotated`` when one is given (callers warn once). 16-bit grey images are scaled
    to 8 bits. A truncated or corrupt file raises instead of returning a partly grey image,
    and so does an image whose size differs from ``expected_size`` ``(width, height)``.
    """
    if not os.path.isfile(path):
        raise BadInputError(f"image file not found: {path}", "missing_image")
    try:
        with Image.open(path) as image:
            image.load()  # raises OSError on truncated data (LOAD_TRUNCATED_IMAGES is off)
            orientation = image.getexif().get(EXIF_ORIENTATION, 1)
            array = rgb8(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise BadInputError(f"corrupt or truncated image {path}: {error}", "corrupt_image") from None
    if orientation not in (1, None) and exif_rotated is not None:
        exif_rotated.append(path)
    if expected_size is not None and (array.shape[1], array.shape[0]) != tuple(expected_size):
        turned = orientation in (5, 6, 7, 8) and (array.shape[0], array.shape[1]) == tuple(expected_size)
        hint = (" (its EXIF orientation turns it when displayed: annotate the stored pixels, as COCO does, "
                "or save it turned)") if turned else ""
        raise BadInputError(
            f"image {path} is {array.shape[1]}x{array.shape[0]}, the annotations say "
            f"{expected_size[0]}x{expected_size[1]}{hint}", "image_size_mismatch")
    return array
