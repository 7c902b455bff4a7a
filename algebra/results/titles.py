"""The words of a heat-map figure: each panel's title and the figure's header."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

PANEL_DIMS = ("sample", "target", "side")  # the dims whose panels need no name


def _coord(result: xr.DataArray, name: str, index: dict[str, int]) -> Any:
    if name not in result.coords:
        return None
    coord = result.coords[name]
    if any(d not in index for d in coord.dims):  # a coordinate along a feature dim
        return None
    value = coord.isel({d: index[d] for d in coord.dims}).values
    return value.item() if isinstance(value, np.ndarray) else value


def _names_of_classes(result: xr.DataArray) -> dict[Any, str]:
    if "class" not in result.coords or "class_name" not in result.coords:
        return {}
    pairs = zip(np.ravel(result["class"].values), np.ravel(result["class_name"].values), strict=False)  # fmt: skip
    return {int(k): str(v) for k, v in pairs if str(v) != str(k)}


def panel_title(
    result: xr.DataArray,
    index: dict[str, int],
    only: Sequence[str] | None = None,
    hide: Sequence[str] = (),
) -> str:
    """A panel's title: its sample (and side, and stacked dims), the class explained, and
    the predicted and true labels, with class names where they say more than the index.

    ``only`` keeps those dims of ``index``; the dims in ``hide`` are not named (a row
    label names them) but still pick the panel's coordinates.

    Examples
    --------
    >>> r = xr.DataArray(np.zeros((1, 2, 2)), dims=("sample", "y", "x"),
    ...                  coords={"pred": ("sample", [3]), "label": ("sample", [5])})
    >>> panel_title(r, {"sample": 0})
    'sample 0\\npred 3, label 5'
    """
    index = {d: i for d, i in index.items() if only is None or d in only}
    named = {d: i for d, i in index.items() if d not in hide}
    sample = _coord(result, "sample", index)
    first = [f"sample {index['sample'] if sample is None else sample}"] if "sample" in named else []
    if "side" in named:
        side = _coord(result, "side", index)
        first = [(first[0] + " " if first else "") + f"({side or index['side']})"]
    for dim in named:
        if dim not in PANEL_DIMS:
            first.append(row_label(result, dim, index))
    lines = [", ".join(first)] if first else []
    names = _names_of_classes(result)
    klass, name = _coord(result, "class", index), _coord(result, "class_name", index)
    if klass is not None:
        lines.append(f"class {klass}" + (f" {name}" if name not in (None, "", str(klass)) else ""))
    elif "target" in index:
        target = _coord(result, "target", index)
        lines.append(f"target {index['target'] if target is None else target}")
    known = [(k, _coord(result, k, index)) for k in ("pred", "label")]
    shown = [f"{k} {v}" + (f" ({names[v]})" if v in names else "") for k, v in known if v is not None]  # fmt: skip
    if shown:
        lines.append(", ".join(shown))
    return "\n".join(lines)


def row_label(result: xr.DataArray, dim: str, index: dict[str, int]) -> str:
    """``"<dim> <value>"`` for a panel dim, e.g. ``"layer block2"``.

    Examples
    --------
    >>> r = xr.DataArray(np.zeros((2, 1)), dims=("layer", "x"), coords={"layer": ["a", "b"]})
    >>> row_label(r, "layer", {"layer": 1})
    'layer b'
    """
    value = _coord(result, dim, index)
    return f"{dim} {index[dim] if value is None else value}"


def wrap(parts: list[str], width: int) -> list[str]:
    """Lines of at most ``width`` characters, broken between parts where possible.

    Examples
    --------
    >>> wrap(["saliency", "target 0", "summed over channel"], 20)
    ['saliency, target 0,', 'summed over channel']
    """
    lines: list[str] = []
    for part in parts:
        if lines and len(lines[-1]) + 2 + len(part) <= width:
            lines[-1] += ", " + part
        else:
            if lines:
                lines[-1] += ","
            lines.append(part)
    return lines


def header(
    result: xr.DataArray, summed: list[str], shown: xr.DataArray, caps: dict[str, int]
) -> list[str]:
    """The parts of a figure's title: method, target, layer, summed dims, what was cut.

    Examples
    --------
    >>> r = xr.DataArray(np.zeros((3, 2, 2)), dims=("sample", "y", "x"), attrs={"method": "shapley"})
    >>> header(r, [], r.isel(sample=slice(0, 2)), {"sample": 2})
    ['shapley', 'first 2 of 3 samples']
    """
    attrs = result.attrs
    parts = [str(attrs.get("method") or result.name or "result")]
    if attrs.get("target"):
        parts.append(f"target {attrs['target']}")
    if attrs.get("layer"):
        parts.append(f"layer {attrs['layer']!r}")
    if summed:
        parts.append(f"summed over {', '.join(summed)}")
    for dim, what in (("sample", "samples"), ("target", "targets")):
        if dim in shown.dims and shown.sizes[dim] < result.sizes[dim]:
            parts.append(f"first {shown.sizes[dim]} of {result.sizes[dim]} {what}")
    return parts
