"""``Query``: the chainable, lazy view of a model on inputs, and its attribution methods."""

from __future__ import annotations

from typing import Any

from .expr import Expr
from .kernels.checks import as_baseline, fingerprint
from .methods import check_flag, check_rule, check_steps
from .nodes import Node, Ref
from .operators import Attribution, Layer, layer_of, source_of
from .targets import as_target


class Query:
    """What to explain: a model on a batch of inputs, optionally at a layer.

    Built by :meth:`Model.on`; every method returns a new object and runs nothing.
    """

    def __init__(self, node: Node):
        self.node = node

    def __repr__(self) -> str:
        source = source_of(self.node)
        where = f"layer {layer_of(self.node)!r}" if layer_of(self.node) else "inputs"
        return f"Query({source.wrapped_model.name} on {where} {list(source.shape)})"

    def layer(self, name: str) -> Query:
        """Select a layer: attribute its output activation instead of the input.

        Parameters
        ----------
        name : str
            The layer's name in ``module.named_modules()``.

        Returns
        -------
        Query

        Examples
        --------
        >>> import torch, algebra as ia
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)).eval()
        >>> q = ia.model(net).on(torch.rand(2, 4))
        >>> q.layer("1")
        Query(Sequential on layer '1' [2, 4])
        >>> q.layer("l1")
        Traceback (most recent call last):
        ValueError: layer: the model has no layer 'l1'. Did you mean '1'? Layers are named as in model.named_modules(); see Model.layer_names.
        """
        if not isinstance(name, str):
            raise TypeError(f"name: expected a layer name (str); got {type(name).__name__}")
        return Query(Layer(self.node, name))

    def _attribution(self, method: str, target: Any, params: tuple[tuple[str, Any], ...]) -> Expr:
        return Expr(Attribution(self.node, method, as_target(target), params))

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
        baseline : float or torch.Tensor, default 0.0
            The path's start: a scalar, or a tensor broadcastable to the inputs.

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
        base = as_baseline(baseline, source_of(self.node).inputs.value)
        ref = base if isinstance(base, float) else Ref(base, fingerprint(base))
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
