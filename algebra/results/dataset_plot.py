"""Pictures of the NeuroInspect ``Dataset`` results: the ``.ia`` accessor of ``xarray.Dataset``.

``vis.ia.plot()`` draws a feature visualisation (``Model.visualize``) as a grid, one row
per neuron and one column per image, dimming where the neuron is inactive;
``neurons.ia.plot()`` draws the votes of counterfactual neurons as bars. Figures are built
without ``pyplot`` (no global state, headless); ``matplotlib`` is imported on first use.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from .netcdf import serialisable_dataset

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["DatasetAccessor"]


@xr.register_dataset_accessor("ia")
class DatasetAccessor:
    """The ``.ia`` namespace of a NeuroInspect ``Dataset``: ``plot`` and ``to_netcdf``."""

    def __init__(self, result: xr.Dataset) -> None:
        self._result = result

    def plot(self, dim: float = 0.3, top: int = 10, panel_size: float = 1.6) -> Figure:
        """Draw the result: a visualisation as an image grid, counterfactual neurons as bars.

        Parameters
        ----------
        dim : float, default 0.3
            For visualisations: the brightness kept where the neuron's mask is off (1 shows
            the images as they are).
        top : int, default 10
            For counterfactual neurons: the most-voted neurons shown per kind.
        panel_size : float
            Size of one panel in inches.

        Returns
        -------
        matplotlib.figure.Figure
            With an Agg canvas: ``fig.savefig("grid.png")`` works anywhere.

        Examples
        --------
        >>> import torch, algebra as ia
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(),
        ...                           torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
        ...                           torch.nn.Linear(4, 2)).eval()
        >>> with ia.set_options(progress=False):
        ...     vis = ia.model(net).visualize("1", [0, 3], steps=2, images=3, size=10, seed=0)
        >>> fig = vis.ia.plot()
        >>> len([ax for ax in fig.axes if ax.get_label().startswith("panel")])  # 2 x 3
        6
        """
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        result = self._result
        if "images" in result and "masks" in result:
            fig = _grid(Figure, result, dim, panel_size)
        elif "votes" in result:
            fig = _votes(Figure, result, top, panel_size)
        else:
            raise ValueError(
                "plot: expected the Dataset of Model.visualize (images, masks) or of "
                f"counterfactual_neurons (votes); got variables {sorted(result.data_vars)}"
            )
        FigureCanvasAgg(fig)
        return fig

    def to_netcdf(self, path: str | os.PathLike[str]) -> Path:
        """Write the Dataset to a netCDF file (netCDF3, ``scipy`` engine); return the path.

        Types change as for a ``DataArray`` (``DataArray.ia.to_netcdf``); boolean variables
        (``flipped``, ``masks``) are written as 0/1 bytes. ``xarray.open_dataset(path)``
        reads it back.

        Examples
        --------
        >>> import tempfile, torch, xarray as xr, algebra as ia
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3)).eval()
        >>> torch.manual_seed(0) is not None
        True
        >>> ds = ia.model(net).on(torch.randn(30, 4), labels=[1] * 30).counterfactual_neurons(1, top=2).compute()
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     with xr.open_dataset(ds.ia.to_netcdf(f"{tmp}/neurons.nc")) as back:
        ...         same = bool((back.delta == ds.delta).all())
        >>> same
        True
        """
        path = Path(path)
        serialisable_dataset(self._result).to_netcdf(path, engine="scipy")
        return path


def _grid(figure: type, result: xr.Dataset, dim: float, size: float) -> Figure:
    if not 0 <= dim <= 1:
        raise ValueError(f"dim: expected a brightness in [0, 1]; got {dim!r}")
    images = result.images.transpose("neuron", "image", "channel", "y", "x").values
    masks = result.masks.transpose("neuron", "image", "y", "x").values.astype(images.dtype)
    rows, cols = images.shape[:2]
    fig = figure(figsize=(size * cols, size * rows + 0.4))
    shown = images * (dim + (1 - dim) * masks[:, :, None])
    title = f"layer {result.attrs.get('layer', '')!r}"
    if "cls" in result.attrs:
        title += f" for class {result.attrs.get('class_name', result.attrs['cls'])}"
    fig.suptitle(title)
    for r in range(rows):
        for c in range(cols):
            ax = fig.add_subplot(rows, cols, r * cols + c + 1, label=f"panel {r} {c}")
            picture = np.moveaxis(shown[r, c], 0, -1)
            ax.imshow(picture[..., 0] if picture.shape[-1] == 1 else picture.clip(0, 1),
                      cmap="gray" if picture.shape[-1] == 1 else None)  # fmt: skip
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(f"neuron {int(result.neuron[r])}")
    return fig


def _votes(figure: type, result: xr.Dataset, top: int, size: float) -> Figure:
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ValueError(f"top: expected a positive integer; got {top!r}")
    kinds = result.kind.values.tolist()
    fig = figure(figsize=(size * 4, size * 1.5 * len(kinds)))
    for i, kind in enumerate(kinds):
        share = result.votes.sel(kind=kind)
        order = np.argsort(-share.values, kind="stable")[:top]
        order = order[share.values[order] > 0]
        ax = fig.add_subplot(len(kinds), 1, i + 1, label=f"panel {kind}")
        ax.bar(range(len(order)), share.values[order])
        ax.set_xticks(range(len(order)), [str(int(result.neuron[j])) for j in order])
        ax.set_ylabel("% of mistakes")
        ax.set_title(f"{kind} neurons")
    fig.suptitle(f"counterfactual neurons of class {result.attrs.get('cls')}")
    fig.tight_layout()
    return fig
