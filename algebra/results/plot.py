"""Heat maps, PNG and netCDF files for results: the ``.ia`` accessor of ``xarray.DataArray``.

Importing this module registers the accessor, so every result has ``result.ia.plot()``
(a ``matplotlib`` figure: a grid of heat maps over any dims, drawn by
:mod:`algebra.results.grid_plot`), ``result.ia.to_png(path)`` and
``result.ia.to_netcdf(path)``. Figures are built without ``pyplot``: no global state, no
window, and they work on headless machines. ``matplotlib`` is imported on the first call
to ``plot``, not with the library.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import xarray as xr

from .grid_plot import grid_figure
from .netcdf import serialisable

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["ResultAccessor"]


@xr.register_dataarray_accessor("ia")
class ResultAccessor:
    """The ``.ia`` namespace of a result: ``plot``, ``to_png`` and ``to_netcdf``.

    Parameters
    ----------
    result
        An ialgebra result: dims ``sample``, optionally ``target`` and ``side``, then the
        feature dims.
    """

    def __init__(self, result: xr.DataArray) -> None:
        self._result = result

    def plot(
        self,
        inputs: Any = None,
        *,
        overlay: bool = True,
        row: str | Sequence[str] | None = None,
        col: str | Sequence[str] | None = None,
        max_samples: int = 16,
        max_targets: int = 10,
        alpha: float = 0.5,
        cmap: str | None = None,
        shared: bool = True,
        panel_size: float = 2.0,
        title: str | None = None,
    ) -> Figure:
        """Draw a grid of heat maps, one panel per sample and target (or any dims), over
        the inputs when given.

        By default rows are samples and columns are targets (times sides, for a result
        with a ``side`` dim, and times the dim of a :func:`ia.stack <algebra.results.stack.stack>`).
        ``row=`` and ``col=`` lay out any dims instead: ``row="layer", col="sample"`` for
        maps stacked over layers, ``row="method"`` for several methods. Feature dims other
        than the last two are summed (the ``channel`` of an image), and the last two make
        the map; a result with a single feature dim is drawn as one strip per panel.
        Values of both signs get a diverging colormap centred on zero (``RdBu_r``: red
        positive, blue negative), values of one sign a sequential one (``viridis``). Each
        panel's title names its sample, the class explained (with its name) and the
        predicted and true labels; a colour bar gives the scale.

        Parameters
        ----------
        inputs
            Images to draw under the maps: a ``torch.Tensor`` or array ``[N, C, H, W]``
            with ``C`` 1 or 3, or ``[N, H, W]``, one per sample of the result; or a
            ``DataArray`` over panel dims and ``channel, y, x`` (each panel gets its own
            image: adversarial inputs under their maps). Each image is scaled to
            ``[0, 1]`` on its own. Maps of another grid (a layer's) are stretched over it.
        overlay
            Draw the maps over the images (``True``), or the images in a panel of their own
            at the start of each sample's row (``False``).
        row, col
            A dim name, or a list of them, laid out down the rows and across the columns.
        max_samples, max_targets
            Draw the first ``max_samples`` samples and ``max_targets`` targets only (16 and
            10: a readable figure); the title says how many were left out.
        alpha
            Opacity of the heat maps over the inputs.
        cmap
            A matplotlib colormap name instead of the defaults.
        shared
            One colour scale and colorbar for all panels (comparable panels), or one per
            panel (``False``: each map uses its own range).
        panel_size
            Size of one panel in inches.
        title
            The figure's title (default: the method, target, layer and what was summed).

        Returns
        -------
        matplotlib.figure.Figure
            The figure, with an Agg canvas: ``fig.savefig("map.png")`` works anywhere.

        Raises
        ------
        ValueError
            If the result has no ``sample`` dim (and no ``row``/``col``), ``row``/``col``
            name dims it lacks or leave one unplaced, or ``inputs`` do not fit it.

        Examples
        --------
        >>> import tempfile, torch, algebra as ia
        >>> net = torch.nn.Sequential(
        ...     torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
        ...     torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 3),
        ... ).eval()
        >>> images = torch.rand(2, 3, 8, 8)
        >>> result = ia.model(net).on(images, labels=[0, 1]).saliency("all").compute()
        >>> fig = result.ia.plot(images)
        >>> len([ax for ax in fig.axes if ax.get_label().startswith("panel")])  # 2 x 3
        6
        >>> fig = result.ia.plot(images, row="target", overlay=False)  # targets down
        >>> [ax.get_label() for ax in fig.axes][1:3]  # the inputs on top, then the maps
        ['input sample=1', 'panel target=0 sample=0']
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     fig.savefig(f"{tmp}/saliency.png")
        """
        return grid_figure(
            self._result, inputs, overlay=overlay, row=row, col=col,
            max_samples=max_samples, max_targets=max_targets, alpha=alpha, cmap=cmap,
            shared=shared, panel_size=panel_size, title=title,
        )  # fmt: skip

    def to_png(self, path: str | os.PathLike[str], *, dpi: int = 100, **plot: Any) -> Path:
        """Draw the result with :meth:`plot` and write it as a PNG file; return the path.

        Parameters
        ----------
        path
            The file to write (overwritten; ``.png`` is not added).
        dpi
            Resolution in dots per inch.
        **plot
            Arguments of :meth:`plot` (``inputs``, ``row``, ``col``, ``cmap``, ...).

        Returns
        -------
        pathlib.Path
            ``path``.

        Examples
        --------
        >>> import tempfile, torch, algebra as ia
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 3)).eval()
        >>> x = torch.rand(2, 3, 4, 4)
        >>> r = ia.model(net).on(x).saliency("pred").compute()
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = r.ia.to_png(f"{tmp}/map.png", inputs=x)
        ...     path.read_bytes()[:4]
        b'\x89PNG'
        """
        path = Path(path)
        self.plot(**plot).savefig(path, dpi=dpi)
        return path

    def to_netcdf(self, path: str | os.PathLike[str]) -> Path:
        """Write the result to a netCDF file (netCDF3, ``scipy`` engine); return the path.

        netCDF3 has fewer types than a result holds, so values change type, not value:

        - boolean attributes (``abs``) are written as integers 0/1; ``None`` attributes as
          ``""``; attributes netCDF cannot hold (dicts, lists of strings) as their ``repr``;
        - 64-bit and unsigned integers become ``int32``, or ``float64`` (exact up to
          2**53) when they do not fit; ``float16`` becomes ``float32``;
        - string coordinates (``class_name``, string sample ids) are kept, and read back
          as ``object`` arrays of ``str``.

        ``xarray.open_dataarray(path)`` reads the file back with equal values and coords.

        Parameters
        ----------
        path
            The file to write (it is overwritten).

        Returns
        -------
        pathlib.Path
            ``path``.

        Raises
        ------
        ValueError
            If an integer is too large for both ``int32`` and an exact ``float64``.

        Examples
        --------
        >>> import tempfile, torch, xarray as xr, algebra as ia
        >>> import algebra.results.plot
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3)).eval()
        >>> q = ia.model(net, classes=["ant", "bee", "cat"]).on(torch.rand(2, 4))
        >>> result = q.saliency("all").compute()
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = result.ia.to_netcdf(f"{tmp}/saliency.nc")
        ...     with xr.open_dataarray(path) as back:
        ...         _ = back.load()
        ...     path.name
        'saliency.nc'
        >>> back.equals(result), list(back.class_name.values), int(back.attrs["abs"])
        (True, ['ant', 'bee', 'cat'], 1)
        """
        path = Path(path)
        serialisable(self._result).to_netcdf(path, engine="scipy")
        return path
