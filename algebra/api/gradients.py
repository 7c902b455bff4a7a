"""The gradient family of attribution methods, as methods of :class:`~algebra.api.query.Query`.

Each builds an :class:`~algebra.ir.attribution.Attribution` node, validated when built; the
optimizer fuses every gradient request on the same points into one forward and one
batched backward.
"""

from __future__ import annotations

from typing import Any

from ..ir.attribution import check_flag, check_rule, check_steps
from ..ir.node import Node
from ..ir.views import layer_of, source_of
from .expr import Expr
from .params import baseline_param, grid_param


class GradientMethods:
    """Saliency, input x gradient, integrated gradients and GradCAM (mixed into ``Query``)."""

    node: Node

    def _attribution(self, method: str, target: Any, params: tuple[tuple[str, Any], ...]) -> Expr:
        raise NotImplementedError  # Query builds the node (and applies its filters)

    def saliency(self, target: Any, abs: bool = True) -> Expr:
        """Gradient of the target score with respect to the input (or selected layer).

        Parameters
        ----------
        target : int, sequence of int, "pred", "label", "all", ia.topk(k), ia.classes([...]) or callable
            The output(s) to explain.
        abs : bool, default True
            Return the absolute value of the gradient (Captum's default).

        Returns
        -------
        Expr

        Examples
        --------
        >>> import torch, algebra as ia
        >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
        >>> q.saliency("pred").compute().dims
        ('sample', 'feature')
        """
        return self._attribution("saliency", target, (("abs", check_flag(abs, "abs")),))

    def input_x_gradient(self, target: Any) -> Expr:
        """Gradient times input (or times the activation of the selected layer).

        Parameters
        ----------
        target : int, sequence of int, "pred", "label", "all", ia.topk(k), ia.classes([...]) or callable
            The output(s) to explain.

        Returns
        -------
        Expr

        Examples
        --------
        >>> import torch, algebra as ia
        >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
        >>> q.input_x_gradient(ia.topk(2)).compute().dims
        ('sample', 'target', 'feature')
        """
        return self._attribution("input_x_gradient", target, ())

    def integrated_gradients(
        self,
        target: Any,
        steps: int = 50,
        method: str = "gausslegendre",
        baseline: Any = 0.0,
        multiply_by_inputs: bool = True,
    ) -> Expr:
        """Integrated gradients from ``baseline`` to the input (or between their layer activations).

        The result carries a ``delta`` coordinate over (sample, target): the attribution's
        sum minus ``f(x) - f(baseline)`` (Captum's convergence delta), from the inputs'
        logits and one gradient-free forward of the baseline (one row when it is shared),
        for targets of the model's outputs and paths without a window.

        Parameters
        ----------
        target : int, sequence of int, "pred", "label", "all", ia.topk(k), ia.classes([...]) or callable
            The output(s) to explain.
        steps : int, default 50
            Number of points on the path.
        method : str, default "gausslegendre"
            Integration rule: ``riemann_left``, ``riemann_right``, ``riemann_middle``,
            ``riemann_trapezoid`` or ``gausslegendre``.
        baseline : float, torch.Tensor or Query, default 0.0
            The path's start: a scalar, a tensor broadcastable to the inputs, or another
            query whose inputs (of the same shape, edits applied) are the baseline.
        multiply_by_inputs : bool, default True
            ``False`` gives the integrated gradient alone, not times ``x - baseline``
            (local attribution, as Captum's), with no delta.

        Returns
        -------
        Expr

        Examples
        --------
        >>> import torch, algebra as ia
        >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
        >>> r = q.integrated_gradients(0, steps=8).compute()
        >>> r.attrs["steps"], r.attrs["integration"], bool(abs(r.delta).max() < 1e-5)
        (8, 'gausslegendre', True)
        """
        rule = check_rule(method)
        ref = baseline_param(self.node, baseline)
        params = (("steps", check_steps(steps, rule)), ("method", rule), ("baseline", ref))
        if not check_flag(multiply_by_inputs, "multiply_by_inputs"):  # shown when not default
            params += (("multiply_by_inputs", False),)
        return self._attribution("integrated_gradients", target, params)

    def grad_cam(
        self, target: Any, relu: bool = True, upsample: bool = True, grid: Any = None
    ) -> Expr:
        """GradCAM of the selected layer: its channels weighted by their mean gradient.

        With ``relu=False, upsample=False`` this is Captum's ``LayerGradCam``. It shares the
        forward and the batched backward with every other gradient request on the inputs
        (the other CAMs of the layer included, :mod:`algebra.api.cams`).

        Parameters
        ----------
        target : int, sequence of int, "pred", "label", "all", ia.topk(k), ia.classes([...]) or callable
            The output(s) to explain.
        relu : bool, default True
            Keep only the positive evidence (the map's ReLU).
        upsample : bool, default True
            Resize the map bilinearly to the input's resolution (image inputs ``[N, C, H, W]``);
            otherwise it stays on the layer's grid.
        grid : None, "auto", (rows, cols) or callable, optional
            How a transformer layer's tokens lie on a grid (a class token first is dropped);
            for image inputs, a layer of tokens ``[N, T, D]`` is read as ``"auto"``.

        Returns
        -------
        Expr
            Dims ``sample``, (``target``), ``y``, ``x``.

        Examples
        --------
        >>> import torch, algebra as ia
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(),
        ...                           torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 2)).eval()
        >>> q = ia.model(net).on(torch.rand(2, 3, 8, 8))
        >>> q.layer("1").grad_cam("all").compute().sizes
        Frozen({'sample': 2, 'target': 2, 'y': 8, 'x': 8})
        >>> q.layer("1").grad_cam(0, upsample=False).compute().sizes
        Frozen({'sample': 2, 'y': 6, 'x': 6})
        """
        relu = check_flag(relu, "relu")
        upsample = check_flag(upsample, "upsample")
        shape = source_of(self.node).shape
        if upsample and len(shape) != 4:
            raise ValueError(
                f"upsample: the map is resized to an image's [H, W], but the inputs have shape "
                f"{list(shape)}; pass upsample=False"
            )
        params: tuple[tuple[str, Any], ...] = (("relu", relu), ("upsample", upsample))
        layer = layer_of(self.node)
        if layer is not None:  # a layer without a grid is refused now, not when computed
            stored, _ = grid_param(self.node, layer, grid, "grad_cam")
            params += () if stored is None else (("grid", stored),)
        return self._attribution("grad_cam", target, params)
