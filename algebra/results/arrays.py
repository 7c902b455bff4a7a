"""The xarray boundary: the only place results are copied from the device to the host."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from ..kernels.frame import Frame


def host(tensor: Any) -> np.ndarray:
    """A tensor copied to a NumPy array on the host (half precision widened to float32).

    Examples
    --------
    >>> import torch
    >>> host(torch.ones(2, dtype=torch.bfloat16)).dtype
    dtype('float32')
    """
    tensor = tensor.detach()
    if tensor.is_floating_point() and tensor.element_size() < 4:  # float16 / bfloat16
        tensor = tensor.float()
    return tensor.cpu().numpy()


def to_xarray(frame: Frame, name: str) -> xr.DataArray:
    """A frame becomes a ``DataArray`` on the host.

    Examples
    --------
    >>> import torch
    >>> to_xarray(Frame(torch.zeros(2, 3), ("sample", "x")), "saliency").dims
    ('sample', 'x')
    """
    coords = {key: (dims, values) for key, (dims, values) in frame.coords.items()}
    return xr.DataArray(
        host(frame.data), dims=frame.dims, coords=coords, name=name, attrs=dict(frame.attrs)
    )
