"""Checks and fingerprints of user tensors, used by the API layer when it builds nodes."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .digest import content_digest
from .readiness import check_model_ready
from .state import state_token

__all__ = [
    "as_baseline",
    "as_inputs",
    "as_labels",
    "as_patch",
    "check_gradients_available",
    "check_model_ready",
    "check_unchanged",
    "content_token",
    "fingerprint",
    "model_dtype",
    "ordinary",
    "state_token",
]


def model_dtype(module: torch.nn.Module) -> torch.dtype | None:
    """The floating dtype of the module's first floating parameter or buffer, if any.

    Examples
    --------
    >>> model_dtype(torch.nn.Linear(2, 2).double()), model_dtype(torch.nn.ReLU())
    (torch.float64, None)
    """
    for t in [*module.parameters(), *module.buffers()]:
        if t.is_floating_point():
            return t.dtype
    return None


def check_gradients_available() -> None:
    """Refuse to attribute inside ``torch.inference_mode()``, saying how to leave it.

    Examples
    --------
    >>> check_gradients_available()
    >>> with torch.inference_mode():
    ...     check_gradients_available()
    Traceback (most recent call last):
    RuntimeError: attribution needs gradients, and torch.inference_mode() is active here: compute outside the `with torch.inference_mode():` block, or inside `with torch.inference_mode(False):`
    """
    if torch.is_inference_mode_enabled():
        raise RuntimeError(
            "attribution needs gradients, and torch.inference_mode() is active here: "
            "compute outside the `with torch.inference_mode():` block, or inside "
            "`with torch.inference_mode(False):`"
        )


def as_inputs(inputs: Any, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Validate a batch of inputs ``[N, ...]``: a finite floating tensor of the model's dtype.

    NumPy arrays are copied into a tensor of ``dtype`` (NumPy's default float64 would not
    match a float32 model); a tensor of another floating dtype is refused.

    Examples
    --------
    >>> as_inputs(np.zeros((2, 3)), torch.float32).dtype
    torch.float32
    >>> as_inputs(torch.zeros(2, 3, dtype=torch.float64), torch.float32)
    Traceback (most recent call last):
    TypeError: inputs: dtype torch.float64 does not match the model's torch.float32; convert with inputs.to(torch.float32)
    >>> as_inputs(torch.zeros(3))
    Traceback (most recent call last):
    ValueError: inputs: expected a batch [N, ...] with at least 2 dimensions; got shape (3,)
    >>> as_inputs(torch.zeros(2, 0))
    Traceback (most recent call last):
    ValueError: inputs: shape (2, 0) has a feature dimension of size 0; there are no features to attribute
    """
    if isinstance(inputs, np.ndarray):
        floating = inputs.dtype.kind == "f"
        inputs = (
            torch.tensor(inputs, dtype=dtype) if floating and dtype else torch.from_numpy(inputs)
        )
    if not isinstance(inputs, torch.Tensor):
        raise TypeError(
            f"inputs: expected a torch.Tensor of shape [N, ...]; got {type(inputs).__name__}"
        )
    if inputs.ndim < 2:
        raise ValueError(
            f"inputs: expected a batch [N, ...] with at least 2 dimensions; got shape {tuple(inputs.shape)}"
        )
    if inputs.shape[0] == 0:
        raise ValueError("inputs: the batch is empty (N = 0)")
    if inputs.numel() == 0:
        raise ValueError(
            f"inputs: shape {tuple(inputs.shape)} has a feature dimension of size 0; there "
            "are no features to attribute"
        )
    if inputs.device.type == "meta":
        raise ValueError(
            "inputs: the tensor is on the meta device, which holds no values; pass a "
            "tensor with data (on the CPU or the model's device)"
        )
    if not inputs.is_floating_point():
        raise TypeError(f"inputs: expected a floating-point tensor; got dtype {inputs.dtype}")
    if dtype is not None and inputs.dtype != dtype:
        raise TypeError(
            f"inputs: dtype {inputs.dtype} does not match the model's {dtype}; "
            f"convert with inputs.to({dtype})"
        )
    inputs = ordinary(inputs)
    bad = int((~torch.isfinite(inputs)).sum())
    if bad:
        raise ValueError(f"inputs: {bad} value(s) are NaN or infinite; inputs must be finite")
    return inputs


def as_labels(labels: Any, n: int, num_classes: int | None) -> torch.Tensor:
    """Validate labels: integers ``[N]``, within ``num_classes`` when it is known.

    Examples
    --------
    >>> as_labels([0, 2], 2, 3)
    tensor([0, 2])
    >>> as_labels([0, 2, 1], 2, 3)
    Traceback (most recent call last):
    ValueError: labels: expected 2 labels, one per input sample; got 3
    """
    if isinstance(labels, (str, bytes)):
        raise TypeError("labels: expected integers, one per sample; got a string")
    if isinstance(labels, (Sequence, np.ndarray)):
        array = np.asarray(labels)
        if array.dtype.kind not in "iu":
            raise TypeError(f"labels: expected integers, one per sample; got {array.dtype} values")
        labels = torch.as_tensor(array)
    if not isinstance(labels, torch.Tensor):
        raise TypeError(
            f"labels: expected an integer tensor of shape [N]; got {type(labels).__name__}"
        )
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise TypeError(f"labels: expected an integer tensor; got dtype {labels.dtype}")
    if labels.ndim != 1 or labels.shape[0] != n:
        got = labels.shape[0] if labels.ndim == 1 else f"shape {tuple(labels.shape)}"
        raise ValueError(f"labels: expected {n} labels, one per input sample; got {got}")
    labels = ordinary(labels).long()
    if len(labels) and int(labels.min()) < 0:
        raise ValueError(f"labels: expected class indices >= 0; got {int(labels.min())}")
    if num_classes is not None and len(labels) and int(labels.max()) >= num_classes:
        raise ValueError(
            f"labels: label {int(labels.max())} is out of range for {num_classes} classes"
        )
    return labels


def as_baseline(baseline: Any, inputs: torch.Tensor) -> float | torch.Tensor:
    """Validate an integrated-gradients baseline: a finite scalar, or a tensor broadcastable to the inputs.

    Examples
    --------
    >>> as_baseline(0, torch.zeros(2, 3))
    0.0
    >>> as_baseline(torch.zeros(4), torch.zeros(2, 3))
    Traceback (most recent call last):
    ValueError: baseline: shape (4,) is not broadcastable to the inputs' shape (2, 3)
    """
    if isinstance(baseline, np.generic) and baseline.ndim == 0:
        baseline = baseline.item()
    if isinstance(baseline, (int, float)) and not isinstance(baseline, bool):
        if not np.isfinite(baseline):
            raise ValueError(f"baseline: expected a finite number; got {baseline}")
        return float(baseline)
    if isinstance(baseline, np.ndarray):
        baseline = torch.from_numpy(baseline)
    if not isinstance(baseline, torch.Tensor):
        raise TypeError(f"baseline: expected a number or a tensor; got {type(baseline).__name__}")
    try:
        shape = torch.broadcast_shapes(baseline.shape, inputs.shape)
    except RuntimeError:
        shape = None
    if shape != inputs.shape:
        raise ValueError(
            f"baseline: shape {tuple(baseline.shape)} is not broadcastable to the inputs' shape "
            f"{tuple(inputs.shape)}"
        )
    if not bool(torch.isfinite(baseline).all()):
        raise ValueError("baseline: values must be finite")
    return ordinary(baseline)


def as_patch(
    value: Any, inputs: torch.Tensor, window: tuple[int, int, int, int] | None = None
) -> torch.Tensor:
    """Validate a patch value: a finite tensor (or NumPy array), in the inputs' dtype,
    shaped like the window's patch ``[..., r1 - r0, c1 - c0]`` or broadcastable to the inputs.

    Examples
    --------
    >>> as_patch(np.ones((2, 2)), torch.zeros(1, 1, 4, 4)).dtype
    torch.float32
    >>> as_patch(torch.ones(5, 5), torch.zeros(1, 1, 4, 4), (0, 2, 0, 2))
    Traceback (most recent call last):
    ValueError: value: shape [5, 5] fits neither the patch [1, 1, 2, 2] nor the inputs [1, 1, 4, 4]
    >>> as_patch("red", torch.zeros(1, 1, 4, 4))
    Traceback (most recent call last):
    TypeError: value: expected a number or a tensor; got str
    """
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"value: expected a number or a tensor; got {type(value).__name__}")
    if not bool(torch.isfinite(value).all()):
        raise ValueError("value: the patch's values must be finite")
    if window is not None:
        r0, r1, c0, c1 = window
        patch = (*inputs.shape[:-2], r1 - r0, c1 - c0)
        if not (_broadcasts(value.shape, patch) or _broadcasts(value.shape, inputs.shape)):
            raise ValueError(
                f"value: shape {list(value.shape)} fits neither the patch {list(patch)} nor "
                f"the inputs {list(inputs.shape)}"
            )
    return ordinary(value).to(inputs.dtype)


def _broadcasts(shape: Sequence[int], target: Sequence[int]) -> bool:
    try:
        return tuple(torch.broadcast_shapes(tuple(shape), tuple(target))) == tuple(target)
    except RuntimeError:
        return False


def ordinary(tensor: torch.Tensor) -> torch.Tensor:
    """A tensor usable outside inference mode (inference tensors have no version counter).

    Examples
    --------
    >>> with torch.inference_mode():
    ...     t = torch.zeros(2)
    ...     inside = ordinary(t).is_inference()
    >>> ordinary(t).is_inference(), inside
    (False, False)
    """
    if tensor.is_inference():
        with torch.inference_mode(False):  # a clone made in inference mode is one again
            return tensor.clone()
    return tensor


def content_token(tensor: torch.Tensor) -> str:
    """A token from a small tensor's values, so equal data built twice is one expression.

    Examples
    --------
    >>> content_token(torch.tensor([1, 2])) == content_token(torch.tensor([1, 2]))
    True
    """
    data = tensor.detach().cpu().contiguous().numpy().tobytes()
    return f"values:{hashlib.sha1(data).hexdigest()}:{tuple(tensor.shape)}:{tensor.dtype}"


def check_unchanged(tensor: torch.Tensor, token: str, argument: str) -> None:
    """Refuse a tensor modified in place since an expression captured it.

    Examples
    --------
    >>> t = torch.zeros(2)
    >>> token = fingerprint(t)
    >>> _ = t.add_(1)
    >>> check_unchanged(t, token, "inputs")
    Traceback (most recent call last):
    ValueError: inputs: the tensor was modified in place after the query was built; build the query again with model.on(...)
    """
    if token.startswith("tensor:"):
        now = fingerprint(tensor)
    elif token.startswith("values:"):
        now = content_token(tensor)
    else:  # not a tensor token (a model, a callable): nothing to compare
        return
    if now != token:
        raise ValueError(
            f"{argument}: the tensor was modified in place after the query was built; "
            "build the query again with model.on(...)"
        )


def fingerprint(tensor: torch.Tensor) -> str:
    """A token for a tensor: its identity, in-place version, shape, dtype, device and values.

    The node that holds the tensor keeps it alive, so its ``id`` cannot be reused. The
    checksum of the values (:func:`~algebra.kernels.digest.content_digest`) catches
    writes that the version counter misses: through ``.data`` or a NumPy view.

    Examples
    --------
    >>> t = torch.zeros(2)
    >>> a = fingerprint(t); _ = t.add_(1); a == fingerprint(t)
    False
    >>> b = fingerprint(t); t.numpy()[0] = 5; b == fingerprint(t)
    False
    """
    try:
        version = tensor._version
    except RuntimeError:  # inference tensors have no version counter
        version = -1
    digest = content_digest([tensor])
    shape = tuple(tensor.shape)
    return f"tensor:{id(tensor)}:{version}:{shape}:{tensor.dtype}:{tensor.device}:{digest}"
