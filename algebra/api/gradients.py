"""The gradient family of attribution methods, as methods of :class:`~algebra.api.query.Query`.

Each builds an :class:`~algebra.ir.attribution.Attribution` node, validated when built; the
optimizer fuses every gradient request on the same points into one forward and one
batched backward.
"""

from __future__ import annotations

from typing import Any

from ..ir.attribution import check_flag, check_rule, check_steps
from ..ir.node import Node, Ref
from ..ir.views import base_of, source_of
from ..kernels.checks import as_baseline, fingerprint
from .expr import Expr


def is_query(value: Any) -> bool:
    """Whether ``value`` is a query (a view of a model on inputs), not an expression.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> q = ia.model(torch.nn.Linear(4, 3)).on(torch.rand(2, 4))
    >>> is_query(q), is_query(q.saliency(0)), is_query(0.0)
    (True, False, False)
    """
    node = getattr(value, "node", None)
    return isinstance(node, Node) and node.role == "view"


def baseline_param(view: Node, baseline: Any) -> Any:
    """A baseline as an expression holds it: a float, a tensor's ``Ref``, or another query's
    base node (its inputs, edits applied, made lazily).

    Examples
    --------
    >>> import torch, algebra as ia
    >>> q = ia.model(torch.nn.Linear(4, 3)).on(torch.rand(2, 4))
    >>> baseline_param(q.node, 0), baseline_param(q.node, torch.zeros(4)).token[:6]
    (0.0, 'tensor')
    >>> baseline_param(q.node, ia.model(torch.nn.Linear(5, 3)).on(torch.rand(2, 5)))
    Traceback (most recent call last):
    ValueError: baseline: the baseline query's inputs have shape [2, 5], but the inputs have shape [2, 4]
    """
    if is_query(baseline):  # another query's inputs (edits included), lazily
        ref: Any = base_of(baseline.node)
        shapes = source_of(ref).shape, source_of(view).shape
        if shapes[0] != shapes[1]:
            raise ValueError(
                f"baseline: the baseline query's inputs have shape {list(shapes[0])}, "
                f"but the inputs have shape {list(shapes[1])}"
            )
        return ref
    base = as_baseline(baseline, source_of(view).inputs.value)
    return base if isinstance(base, float) else Ref(base, fingerprint(base))


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
        self, target: Any, steps: int = 50, method: str = "gausslegendre", baseline: Any = 0.0
    ) -> Expr:
        """Integrated gradients from ``baseline`` to the input (or between their layer activations).

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

        Returns
        -------
        Expr

        Examples
        --------
        >>> import torch, algebra as ia
        >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
        >>> r = q.integrated_gradients(0, steps=8).compute()
        >>> r.attrs["steps"], r.attrs["integration"]
        (8, 'gausslegendre')
        """
        rule = check_rule(method)
        ref = baseline_param(self.node, baseline)
        params = (("steps", check_steps(steps, rule)), ("method", rule), ("baseline", ref))
        return self._attribution("integrated_gradients", target, params)

    def grad_cam(self, target: Any, relu: bool = True, upsample: bool = True) -> Expr:
        """GradCAM of the selected layer: its channels weighted by their mean gradient.

        With ``relu=False, upsample=False`` this is Captum's ``LayerGradCam``. It shares the
        forward and the batched backward with every other gradient request on the inputs.

        Parameters
        ----------
        target : int, sequence of int, "pred", "label", "all", ia.topk(k), ia.classes([...]) or callable
            The output(s) to explain.
        relu : bool, default True
            Keep only the positive evidence (the map's ReLU).
        upsample : bool, default True
            Resize the map bilinearly to the input's resolution (image inputs ``[N, C, H, W]``);
            otherwise it stays on the layer's grid.

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
        params = (("relu", relu), ("upsample", upsample))
        return self._attribution("grad_cam", target, params)
