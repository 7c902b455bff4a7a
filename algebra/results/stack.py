"""``ia.stack``: maps of several results along a new dim, to draw as one grid (layer x
sample, method x sample, benign x adversarial)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import xarray as xr

from .titles import PANEL_DIMS


def stack(
    results: Mapping[str, xr.DataArray],
    dim: str,
    *,
    size: tuple[int, int] | None = None,
    normalize: bool = False,
) -> xr.DataArray:
    """Stack the maps of several results along a new dim ``dim``, labelled by the keys.

    Each result's feature dims but the last two are summed (the channels of an image or a
    layer), and its last two are resampled, nearest neighbour, to ``size`` (default: the
    largest grid among the results), so maps of different layers stack. The panel dims
    (``sample``, ``target``, ``side``) must agree. Per-sample coordinates that differ
    between the results (``pred`` of benign and adversarial inputs) get the new dim too;
    coordinates that some results lack are dropped.
    Attributes equal in all results are kept, and ``stacked`` names the new dim (and
    those of stacked results stacked again), so ``.ia.plot()`` lays them out as panel
    dims.

    Parameters
    ----------
    results
        Results by name (a dict from ``ia.compute``).
    dim
        The name of the new dim (``"layer"``, ``"method"``, ``"input"``, ...).
    size
        The ``(rows, cols)`` of the stacked maps.
    normalize
        Divide each map (after summing) by its largest magnitude, so that layers of very
        different scales share one colour scale; all-zero maps stay zero.

    Returns
    -------
    xarray.DataArray
        Dims: ``dim``, the panel dims, then ``y, x``.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
    ...                           torch.nn.MaxPool2d(2), torch.nn.Flatten(),
    ...                           torch.nn.Linear(4 * 4 * 4, 3)).eval()
    >>> q = ia.model(net).on(torch.rand(2, 3, 8, 8))
    >>> maps = ia.compute({name: q.layer(name).input_x_gradient("pred") for name in ["1", "2"]})
    >>> grid = ia.stack(maps, "layer")
    >>> grid.dims, grid.layer.values.tolist(), grid.attrs["stacked"]
    (('layer', 'sample', 'y', 'x'), ['1', '2'], 'layer')
    >>> fig = grid.ia.plot(row="layer", col="sample")
    >>> twice = ia.stack({"a": grid, "b": grid}, "input")  # a stack of stacks
    >>> twice.dims, twice.attrs["stacked"]
    (('input', 'layer', 'sample', 'y', 'x'), 'input layer')
    """
    if not isinstance(dim, str) or not dim:
        raise TypeError(f"dim: expected the new dim's name (a string); got {dim!r}")
    if not isinstance(results, Mapping) or not results:
        raise ValueError("results: expected a non-empty dict of results by name")
    arrays = {}
    for name, result in results.items():
        if not isinstance(result, xr.DataArray):
            raise TypeError(f"results: {name!r} is a {type(result).__name__}, not a DataArray")
        if dim in result.dims:
            raise ValueError(f"dim: {name!r} already has a dim {dim!r}; choose another name")
        earlier = result.attrs.get("stacked", "").split()  # stacks of stacks keep their dims
        panel = [d for d in result.dims if d in PANEL_DIMS or d in earlier]
        features = [d for d in result.dims if d not in panel]
        if len(features) < 2:
            raise ValueError(
                f"results: {name!r} has feature dims {tuple(features)}; stack needs maps "
                "with two spatial dims"
            )
        summed = result.sum(features[:-2], keep_attrs=True) if features[:-2] else result
        if normalize:
            peak = abs(summed).max(features[-2:])
            summed = (summed / peak.where(peak > 0, 1)).assign_attrs(summed.attrs)
        arrays[name] = summed.rename(dict(zip(features[-2:], ("y", "x"), strict=True)))
    panels = {tuple(a.dims[:-2]) for a in arrays.values()}
    if len(panels) > 1:
        raise ValueError(f"results: their panel dims differ ({sorted(panels)}); stack like with like")  # fmt: skip
    if size is None:
        size = tuple(max(a.sizes[d] for a in arrays.values()) for d in ("y", "x"))  # type: ignore[assignment]
    common = set.intersection(*(set(a.coords) for a in arrays.values()))
    parts = [
        _resampled(a, size).drop_vars([c for c in a.coords if c not in common])  # type: ignore[arg-type]
        for a in arrays.values()
    ]
    out = xr.concat(
        parts,
        dim=pd.Index(np.array(list(arrays), dtype=object), name=dim),
        coords="different",
        compat="equals",
        join="outer",
        combine_attrs="drop_conflicts",
    )
    earlier = [d for d in next(iter(arrays.values())).dims if d not in PANEL_DIMS][:-2]
    out.attrs["stacked"] = " ".join([dim, *earlier])
    return out


def _resampled(result: xr.DataArray, size: tuple[int, int]) -> xr.DataArray:
    rows = (np.arange(size[0]) * result.sizes["y"]) // size[0]
    cols = (np.arange(size[1]) * result.sizes["x"]) // size[1]
    keep = {k: v for k, v in result.coords.items() if "y" not in v.dims and "x" not in v.dims}
    data = result.values[..., rows[:, None], cols[None, :]]
    return xr.DataArray(data, dims=result.dims, coords=keep, attrs=result.attrs, name=result.name)
