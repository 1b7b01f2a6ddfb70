"""Argument checks for the public ops: clear ValueErrors naming the argument and the
expected versus actual shape, dtype or device."""
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
    ok = t.dim() == len(expected) and all(e is None or s == e for s, e in zip(t.shape, expected))
    if not ok:
        want = ", ".join("?" if e is None else str(e) for e in expected)
        raise ValueError(f"{name} must have shape {layout} = [{want}], got {list(t.shape)}")


def require_same_device(t, name, ref, ref_name):
    if t.device != ref.device:
        raise ValueError(f"{name} is on {t.device} but {ref_name} is on {ref.device}; move them to the same device")


def require_positive(value, name):
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    if not value > 0:
        raise ValueError(f"{name} must be positive, got {value}")
