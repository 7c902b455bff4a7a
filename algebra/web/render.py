"""A result as the page shows it: a grid of heat-map panels (PNG) and what labels them.

Rows are the samples (times the ``side`` of an anti-join of two inputs), columns the
targets. Feature dims other than the last two are summed (an image's ``channel``); one
feature dim is drawn as a strip. All panels share one colour scale: diverging, centred on
zero, when any value is negative, else sequential from zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from .png import heat_png

PANEL_DIMS = ("side", "sample", "target")
MAX_PANELS = 160  # a grid the page can show at once; more is cut, and the payload says so


@dataclass
class Rendered:
    """The panels' descriptions (JSON), their PNGs, and the grid's shared scale."""

    grid: dict[str, Any]
    panels: list[dict[str, Any]] = field(default_factory=list)
    pngs: list[bytes] = field(default_factory=list)


def maps_of(result: xr.DataArray) -> xr.DataArray:
    """The result with its feature dims made into ``y, x`` maps (summed, or one row).

    Examples
    --------
    >>> r = xr.DataArray(np.ones((2, 3, 4, 5)), dims=("sample", "channel", "y", "x"))
    >>> maps_of(r).dims, maps_of(r).shape
    (('sample', 'y', 'x'), (2, 4, 5))
    >>> maps_of(xr.DataArray(np.ones((2, 6)), dims=("sample", "feature"))).shape
    (2, 1, 6)
    """
    lead = [d for d in PANEL_DIMS if d in result.dims]
    rest = [d for d in result.dims if d not in lead]
    result = result.transpose(*lead, *rest)
    values = result.values.astype(np.float64)
    if len(rest) >= 2:
        summed = tuple(range(len(lead), len(lead) + len(rest) - 2))
        values = values.sum(axis=summed) if summed else values
    elif len(rest) == 1:
        values = values[..., None, :]
    else:
        values = values[..., None, None]
    coords = {d: result[d] for d in lead}
    return xr.DataArray(values, dims=(*lead, "y", "x"), coords=coords)


def _value(coord: Any) -> Any:
    value = coord.values.item() if hasattr(coord, "values") else coord
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    return value


def _label(result: xr.DataArray, name: str, where: dict[str, int]) -> Any:
    if name not in result.coords:
        return None
    coord = result[name]
    index = {d: i for d, i in where.items() if d in coord.dims}
    return _value(coord.isel(index)) if index or coord.ndim == 0 else None


def render(result: xr.DataArray, data: dict[str, str], grid_name: str = "input") -> Rendered:
    """Render ``result`` into panels; ``data`` names the data sets of the ``left`` and
    ``right`` inputs (the images under the maps).

    Parameters
    ----------
    result : xarray.DataArray
        A computed query result.
    data : dict
        ``{"left": name, "right": name}``; ``right`` only for two inputs.
    grid_name : str
        What the maps' grid is (``"input"`` or the layer), shown by the page.

    Returns
    -------
    Rendered

    Examples
    --------
    >>> import torch, algebra as ia
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 3)).eval()
    >>> r = ia.model(net).on(torch.rand(2, 3, 4, 4), labels=[0, 1]).saliency("all").compute()
    >>> out = render(r, {"left": "digits"})
    >>> out.grid["rows"], out.grid["cols"], len(out.pngs), out.grid["signed"]
    (2, 3, 6, False)
    >>> out.panels[4]["sample"], out.panels[4]["target"], out.panels[4]["image"]
    (1, 1, '/api/data/digits/1.png')
    """
    maps = maps_of(result)
    values = maps.values
    finite = values[np.isfinite(values)]
    low = float(finite.min()) if finite.size else 0.0
    high = float(finite.max()) if finite.size else 0.0
    signed = low < 0
    limit = max(abs(low), abs(high)) if signed else max(high, 0.0)
    sides = list(maps["side"].values) if "side" in maps.dims else [None]
    samples = maps.sizes.get("sample", 1)
    targets = maps.sizes.get("target", 1)
    rows = [(s, i) for s in sides for i in range(samples)] if "side" in maps.dims else [
        (None, i) for i in range(samples)
    ]  # fmt: skip
    cut = len(rows) * targets > MAX_PANELS
    rows = rows[: max(MAX_PANELS // max(targets, 1), 1)]
    out = Rendered(
        {
            "rows": len(rows), "cols": targets, "height": int(maps.sizes["y"]),
            "width": int(maps.sizes["x"]), "signed": signed, "limit": limit, "min": low,
            "max": high, "grid": grid_name, "cut": cut, "name": str(result.name),
            "dims": {str(d): int(n) for d, n in result.sizes.items()},
            "window": result.attrs.get("window"),
        }
    )  # fmt: skip
    for r, (side, i) in enumerate(rows):
        for t in range(targets):
            where = {"sample": i, "target": t}
            if side is not None:
                where["side"] = sides.index(side)
            panel = maps.isel({d: v for d, v in where.items() if d in maps.dims})
            right = side == "right"
            sample = _label(result, "sample_right" if right else "sample", where)
            source = data.get("right" if right else "left") or data.get("left")
            out.panels.append({
                "row": r, "col": t, "side": None if side is None else str(side),
                "sample": sample,
                "target": _label(result, "target", where),
                "class": _label(result, "class", where),
                "class_name": _label(result, "class_name", where),
                "pred": None if right else _label(result, "pred", where),
                "label": None if right else _label(result, "label", where),
                "image": f"/api/data/{source}/{sample}.png" if source is not None else None,
            })  # fmt: skip
            out.pngs.append(heat_png(panel.values, limit, signed))
    return out
