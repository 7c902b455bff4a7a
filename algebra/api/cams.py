"""The CAM family on a layer, as pytorch-grad-cam and Captum define it (mixed into ``Query``).

With ``A`` the layer's activations ``[K, *grid]`` (``K`` channels) and ``g`` the gradient of
the target's score with respect to them, each map is ``relu(sum_k w_k A_k)`` (the ReLU
unless ``relu=False``) resized to the inputs (unless ``upsample=False``):

- ``grad_cam``: ``w_k = mean_ij g_kij``
- ``grad_cam_pp``: ``w_k = sum_ij relu(g_kij) a_kij``, ``a = g^2 / (2 g^2 + (sum_ab A_kab) g^3)``
- ``xgrad_cam``: ``w_k = sum_ij g_kij A_kij / sum_ij A_kij``
- ``layer_cam``: ``sum_k relu(g_k) * A_k`` elementwise; ``hires_cam``: ``sum_k g_k * A_k``
- ``eigen_cam``: the projection of ``A`` on its first principal component (no target)
- ``score_cam``: ``w = softmax_k(s_k)``, ``s_k`` the target's score on the inputs times
  ``A_k`` upsampled and min-max normalised (``N x K`` masked forwards, batched and chunked)
- ``guided_grad_cam``: guided backpropagation times the GradCAM map (Captum's)

Every gradient CAM of a layer and target reads one request: several CAMs and layers on the
same inputs come out of one forward and one batched backward. Transformer layers take
``grid=(rows, cols)``, ``"auto"`` or a reshape callable (pytorch-grad-cam's
``reshape_transform``); for image inputs a layer of tokens ``[N, T, D]`` is read as
``"auto"`` (a class token then ``rows x cols`` patches, or a square of patches).
"""

from __future__ import annotations

from typing import Any

import torch

from ..ir.attribution import check_flag
from ..ir.node import Node
from ..ir.targets import Target
from ..ir.views import source_of
from ..kernels.rules import refuse_scripted
from .expr import Expr
from .params import grid_param, selected_layer

SIGNS = ("svd", "positive")


class CamMethods:
    """GradCAM++, XGradCAM, LayerCAM, HiResCAM, EigenCAM, Score-CAM, Guided GradCAM."""

    node: Node

    def _attribution(self, method: str, target: Any, params: tuple[tuple[str, Any], ...]) -> Expr:
        raise NotImplementedError  # Query builds the node (and applies its filters)

    def _map_params(
        self, method: str, relu: Any, upsample: Any, grid: Any
    ) -> tuple[tuple[tuple[str, Any], ...], torch.Tensor]:
        """Checked ``relu``, ``upsample`` and ``grid``, and the layer on its grid (a probe)."""
        layer = selected_layer(self.node, method)
        relu, upsample = check_flag(relu, "relu"), check_flag(upsample, "upsample")
        stored, acts = grid_param(self.node, layer, grid, method)
        shape = source_of(self.node).shape
        if upsample and len(shape) != acts.ndim:
            raise ValueError(
                f"upsample: the map on layer {layer!r}'s {acts.ndim - 2}-D grid is resized to "
                f"the inputs' grid, but the inputs have shape {list(shape)}; pass upsample=False"
            )
        grid_entry = () if stored is None else (("grid", stored),)
        return (("relu", relu), ("upsample", upsample), *grid_entry), acts

    def _gradient_cam(
        self, method: str, target: Any, relu: bool, upsample: bool, grid: Any
    ) -> Expr:
        params, _ = self._map_params(method, relu, upsample, grid)
        return self._attribution(method, target, params)

    def grad_cam_pp(
        self, target: Any, relu: bool = True, upsample: bool = True, grid: Any = None
    ) -> Expr:
        """GradCAM++ of the selected layer: channels weighted by ``sum_ij relu(g) a``.

        ``a_kij = g^2 / (2 g^2 + (sum_ab A_kab) g^3 + 1e-6)`` (0 where ``g = 0``),
        pytorch-grad-cam's closed form.

        Parameters
        ----------
        target : int, sequence of int, "pred", "label", "all", ia.topk(k), ia.classes([...]), ia.units(...) or callable
        relu : bool, default True
            Keep only the positive evidence.
        upsample : bool, default True
            Resize the map (bilinear) to the inputs' grid.
        grid : None, "auto", (rows, cols) or callable, optional
            How a transformer layer's tokens lie on a grid (see the module's notes).

        Returns
        -------
        Expr
            Dims ``sample``, (``target``), then the grid: ``y``, ``x``.

        Examples
        --------
        >>> import torch, algebra as ia
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(),
        ...                           torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 2)).eval()
        >>> ia.model(net).on(torch.rand(2, 3, 8, 8)).layer("1").grad_cam_pp("all").compute().sizes
        Frozen({'sample': 2, 'target': 2, 'y': 8, 'x': 8})
        """
        return self._gradient_cam("grad_cam_pp", target, relu, upsample, grid)

    def xgrad_cam(
        self, target: Any, relu: bool = True, upsample: bool = True, grid: Any = None
    ) -> Expr:
        """XGradCAM of the selected layer: ``w_k = sum_ij g A / (sum_ij A + 1e-7)``.

        Parameters are those of :meth:`grad_cam_pp`.

        Examples
        --------
        >>> import torch, algebra as ia
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(),
        ...                           torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 2)).eval()
        >>> ia.model(net).on(torch.rand(2, 3, 8, 8)).layer("1").xgrad_cam(0, upsample=False).compute().sizes
        Frozen({'sample': 2, 'y': 6, 'x': 6})
        """
        return self._gradient_cam("xgrad_cam", target, relu, upsample, grid)

    def layer_cam(
        self, target: Any, relu: bool = True, upsample: bool = True, grid: Any = None
    ) -> Expr:
        """LayerCAM of the selected layer: ``sum_k relu(g_k) * A_k``, elementwise.

        Parameters are those of :meth:`grad_cam_pp`.

        Examples
        --------
        >>> import torch, algebra as ia
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(),
        ...                           torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 2)).eval()
        >>> ia.model(net).on(torch.rand(2, 3, 8, 8)).layer("1").layer_cam("pred").compute().dims
        ('sample', 'y', 'x')
        """
        return self._gradient_cam("layer_cam", target, relu, upsample, grid)

    def hires_cam(
        self, target: Any, relu: bool = True, upsample: bool = True, grid: Any = None
    ) -> Expr:
        """HiResCAM of the selected layer: ``sum_k g_k * A_k``, elementwise.

        Parameters are those of :meth:`grad_cam_pp`.

        Examples
        --------
        >>> import torch, algebra as ia
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(),
        ...                           torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 2)).eval()
        >>> ia.model(net).on(torch.rand(2, 3, 8, 8)).layer("1").hires_cam(1).compute().dims
        ('sample', 'y', 'x')
        """
        return self._gradient_cam("hires_cam", target, relu, upsample, grid)

    def eigen_cam(
        self, relu: bool = True, upsample: bool = True, grid: Any = None, sign: str = "svd"
    ) -> Expr:
        """EigenCAM of the selected layer: its activations projected on their first
        principal component (per sample, channels centred over positions). No target.

        Parameters
        ----------
        relu, upsample, grid
            As for :meth:`grad_cam_pp`.
        sign : {"svd", "positive"}, default "svd"
            The component's sign as the SVD returns it (pytorch-grad-cam's), or flipped to
            correlate positively with ``sum_k A_k`` (the same on every device).

        Returns
        -------
        Expr
            Dims ``sample``, then the grid.

        Examples
        --------
        >>> import torch, algebra as ia
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(),
        ...                           torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 2)).eval()
        >>> ia.model(net).on(torch.rand(2, 3, 8, 8)).layer("1").eigen_cam().compute().sizes
        Frozen({'sample': 2, 'y': 8, 'x': 8})
        """
        if sign not in SIGNS:
            raise ValueError(f"sign: expected one of {', '.join(map(repr, SIGNS))}; got {sign!r}")
        params, _ = self._map_params("eigen_cam", relu, upsample, grid)
        return self._attribution("eigen_cam", Target("none"), (*params, ("sign", sign)))

    def score_cam(
        self, target: Any, relu: bool = True, upsample: bool = True, grid: Any = None
    ) -> Expr:
        """Score-CAM of the selected layer: channels weighted by the softmax, over channels,
        of the target's score on the inputs masked by each channel (upsampled, min-max
        normalised); pytorch-grad-cam's ScoreCAM.

        The ``N x K`` masked inputs are a perturbation stream: built and evaluated in
        chunks under the memory budget, every target scored by the same forwards.

        Parameters are those of :meth:`grad_cam_pp`.

        Examples
        --------
        >>> import torch, algebra as ia
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(),
        ...                           torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 2)).eval()
        >>> ia.model(net).on(torch.rand(2, 3, 8, 8)).layer("1").score_cam("all").compute().sizes
        Frozen({'sample': 2, 'target': 2, 'y': 8, 'x': 8})
        """
        params, acts = self._map_params("score_cam", relu, upsample, grid)
        shape = source_of(self.node).shape
        if len(shape) != acts.ndim:
            raise ValueError(
                f"score_cam: the masks of layer {selected_layer(self.node, 'score_cam')!r} lie on a "
                f"{acts.ndim - 2}-D grid; the inputs {list(shape)} need as many spatial dims"
            )
        return self._attribution("score_cam", target, (*params, ("channels", int(acts.shape[1]))))

    def guided_grad_cam(self, target: Any, grid: Any = None) -> Expr:
        """Guided GradCAM: guided backpropagation (to the inputs) times the rectified
        GradCAM map of the selected layer resized to the inputs by nearest neighbours
        (Captum's GuidedGradCam). GradCAM's gradient is shared with the other CAMs.

        Parameters
        ----------
        target : int, sequence of int, "pred", "label", "all", ia.topk(k), ia.classes([...]), ia.units(...) or callable
        grid : None, "auto", (rows, cols) or callable, optional

        Returns
        -------
        Expr
            The inputs' dims.

        Examples
        --------
        >>> import torch, algebra as ia
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(),
        ...                           torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 2)).eval()
        >>> ia.model(net).on(torch.rand(2, 3, 8, 8)).layer("1").guided_grad_cam(0).compute().dims
        ('sample', 'channel', 'y', 'x')
        """
        refuse_scripted(source_of(self.node).model.torch_module, "guided_grad_cam")
        params, _ = self._map_params("guided_grad_cam", True, True, grid)
        return self._attribution("guided_grad_cam", target, params[2:])
