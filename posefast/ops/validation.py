"""Argument checks for the public ops: clear ValueErrors naming the argument and the
expected versus actual shape, dtype or device."""
import numbers

import numpy as np
import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def require_tensor(value, name):
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(value).__name__}")


def require_float(t, name):
    if t.dtype not in FLOAT_DTYPES:
        raise ValueError(f"{name} must be a floating-point tensor ({', '.join(map(str, FLOAT_DTYPES))}), got {t.dtype}")


def require_mask_dtype(t, name):
    if t.dtype.is_complex:
        raise ValueError(f"{name} must be a bool, integer or float tensor, got {t.dtype}")


def require_shape(t, name, expected, layout):
    """``expected`` is a tuple with None for free dimensions; ``layout`` names them, e.g. '[B, K, 2]'."""
    shape = t.shape
    if len(shape) == len(expected):  # a plain loop: this runs on every op call
        for size, want in zip(shape, expected):
            if want is not None and size != want:
                break
        else:
            return
    want = ", ".join("?" if e is None else str(e) for e in expected)
    raise ValueError(f"{name} must have shape {layout} = [{want}], got {list(shape)}")


def require_same_device(t, name, ref, ref_name):
    if t.device != ref.device:
        raise ValueError(f"{name} is on {t.device} but {ref_name} is on {ref.device}; move them to the same device")


def no_grad_input(t):
    """``t`` detached if it requires grad (for inputs the op never differentiates), else ``t``."""
    return t.detach() if t.requires_grad else t


# float32's largest value: a larger beta (or 1 / (2 sigma^2)) is infinite in the kernels' math
FLOAT32_MAX = float(torch.finfo(torch.float32).max)
# the smallest Gaussian sigma (heatmap px) the kernels render: 1 / (2 sigma^2) must stay finite
# in float32 (below ~4e-20 it overflows and the peak becomes 0 * inf = NaN); 1e-6 px keeps a margin
MIN_SIGMA = 1e-6


def is_number(value):
    """A real Python or NumPy scalar (``np.float32`` too), not a bool."""
    if type(value) is float or type(value) is int:  # the usual case first: this runs on every op call
        return True
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def require_finite(value, name):
    """``value`` a finite number (at most float32's largest in size)."""
    # (abs(): math.isfinite does not trace when torch.compile(dynamic=True) makes it a SymFloat)
    if not is_number(value) or not abs(value) <= FLOAT32_MAX:
        raise ValueError(f"{name} must be a finite number, got {value!r}")


def require_heatmaps(t, name):
    """``t`` a float ``[B, K, H, W]`` tensor with ``H, W > 0``."""
    require_tensor(t, name)
    require_float(t, name)
    require_shape(t, name, (None, None, None, None), "[B, K, H, W]")
    if t.shape[2] == 0 or t.shape[3] == 0:
        raise ValueError(f"{name} must have H > 0 and W > 0, got shape {list(t.shape)}")


def require_positive(value, name, smallest=0.0, largest=FLOAT32_MAX):
    """``value`` a number with ``0 < value``, ``smallest <= value <= largest`` (so finite; NaN fails)."""
    if not is_number(value):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    if not value > 0:
        raise ValueError(f"{name} must be positive, got {value}")
    if not (value >= smallest and value <= largest):
        low = f"[{smallest:g}" if smallest > 0 else "(0"
        raise ValueError(f"{name} must be in {low}, {largest:g}], got {value}")


def require_sigma(sigma, name="sigma"):
    """A Gaussian sigma (heatmap px): positive, at least MIN_SIGMA, finite."""
    require_positive(sigma, name, smallest=MIN_SIGMA)
