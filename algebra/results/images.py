"""The images drawn under heat maps: one per panel, scaled to [0, 1]."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr


def images_of(inputs: Any, result: xr.DataArray, shown: xr.DataArray, panel: list[str]) -> Any:
    """A function from a panel's index to the image under it (``[H, W]`` or ``[H, W, 3]``).

    ``inputs`` is a batch ``[N, C, H, W]`` (or ``[N, H, W]``) of the result's samples, or
    a ``DataArray`` whose dims are panel dims of the result followed by the image dims
    (``channel, y, x`` or ``y, x``): then each panel gets the image of its own values (an
    adversarial input under its map, the benign one under the other).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> r = xr.DataArray(np.zeros((2, 4, 4)), dims=("sample", "y", "x"))
    >>> pick = images_of(np.random.rand(2, 1, 4, 4), r, r, ["sample"])
    >>> pick({"sample": 1}).shape
    (4, 4)
    """
    if isinstance(inputs, xr.DataArray):
        outer = [d for d in inputs.dims if d in panel]
        inner = [d for d in inputs.dims if d not in panel]
        if len(inner) not in (2, 3):
            raise ValueError(
                f"inputs: a DataArray of images needs the result's panel dims {panel} and "
                f"image dims (channel, y, x); got dims {tuple(inputs.dims)}"
            )
        for d in outer:
            if inputs.sizes[d] < shown.sizes[d]:
                raise ValueError(f"inputs: dim {d!r} has {inputs.sizes[d]} values; the result {result.sizes[d]}")  # fmt: skip
        data = inputs.transpose(*outer, *inner).values

        def pick(index: dict[str, int]) -> np.ndarray:
            image = data[tuple(index[d] for d in outer)]
            return normalised(image[None])[0]

        return pick
    if "sample" not in panel:
        raise ValueError("inputs: a batch of images goes with a result whose samples are panels")
    images = normalised(_array(inputs), result.sizes["sample"])
    return lambda index: images[index["sample"]]


def _array(inputs: Any) -> np.ndarray:
    if hasattr(inputs, "detach"):  # a torch.Tensor, without importing torch
        tensor = inputs.detach().cpu()
        try:
            return tensor.numpy()
        except TypeError:  # bfloat16 and other dtypes numpy lacks
            return tensor.float().numpy()
    return np.asarray(inputs)


def normalised(inputs: Any, n: int | None = None) -> np.ndarray:
    """Images as ``[N, H, W]`` (grey) or ``[N, H, W, 3]`` arrays, each scaled to ``[0, 1]``.

    Examples
    --------
    >>> normalised(np.arange(8.0).reshape(2, 1, 2, 2)).max(axis=(1, 2)).tolist()
    [1.0, 1.0]
    """
    array = np.asarray(inputs, dtype=np.float64)
    if array.ndim == 4 and array.shape[1] in (1, 3):
        array = array[:, 0] if array.shape[1] == 1 else array.transpose(0, 2, 3, 1)
    elif array.ndim != 3:
        raise ValueError(
            "inputs must be images [N, C, H, W] with C = 1 or 3, or [N, H, W]; got shape "
            f"{list(array.shape)}"
        )
    if n is not None and len(array) != n:
        raise ValueError(f"inputs have {len(array)} images but the result has {n} samples")
    axes = tuple(range(1, array.ndim))
    low = np.nanmin(array, axis=axes, keepdims=True)
    span = np.nanmax(array, axis=axes, keepdims=True) - low
    return np.where(span > 0, (array - low) / np.where(span > 0, span, 1.0), 0.0)
