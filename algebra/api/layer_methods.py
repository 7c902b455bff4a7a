"""Layer methods: a layer's activation, its conductance and its internal influence along an
input path (Captum's LayerActivation, LayerConductance, InternalInfluence; mixed into
``Query``). The layer forms of the other methods are the methods themselves on
``q.layer(name)``: ``q.layer(name).gradient_shap(...)``, ``q.layer(name).deeplift(...)``.
"""

from __future__ import annotations

from typing import Any

from ..ir.attribution import check_rule, check_steps
from ..ir.node import Node
from ..ir.targets import Target
from .expr import Expr
from .params import baseline_param, selected_layer


class LayerMethods:
    """``activation``, ``conductance`` and ``internal_influence`` of the selected layer."""

    node: Node

    def _attribution(self, method: str, target: Any, params: tuple[tuple[str, Any], ...]) -> Expr:
        raise NotImplementedError  # Query builds the node (and applies its filters)

    def _path_params(self, method: str, steps: Any, rule: Any, baseline: Any) -> tuple:
        selected_layer(self.node, method)
        rule = check_rule(rule)
        return (
            ("steps", check_steps(steps, rule)),
            ("method", rule),
            ("baseline", baseline_param(self.node, baseline)),
        )

    def activation(self) -> Expr:
        """The selected layer's activation itself, labelled (Captum's LayerActivation).

        It is captured by the inputs' forward that every method on these inputs shares.

        Returns
        -------
        Expr
            Dims ``sample`` then the layer's.

        Examples
        --------
        >>> import torch, algebra as ia
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
        >>> ia.model(net.eval()).on(torch.rand(2, 4)).layer("1").activation().compute().sizes
        Frozen({'sample': 2, 'feature': 8})
        """
        selected_layer(self.node, "activation")
        return self._attribution("activation", Target("none"), ())

    def conductance(
        self, target: Any, steps: int = 50, method: str = "gausslegendre", baseline: Any = 0.0
    ) -> Expr:
        """Layer conductance: ``sum_s g_s (a_{s+1} - a_s)`` along the input path from
        ``baseline``, with ``a_s`` the layer's activation and ``g_s`` the target's gradient
        with respect to it at ``steps + 1`` points (Captum's LayerConductance).

        All points run in one forward (in chunks under the memory budget) and one batched
        backward over every target.

        Parameters
        ----------
        target : int, sequence of int, "pred", "label", "all", ia.topk(k), ia.classes([...]), ia.units(...) or callable
        steps : int, default 50
        method : str, default "gausslegendre"
            The integration rule whose points are used (as Captum's).
        baseline : float, torch.Tensor or Query, default 0.0

        Returns
        -------
        Expr
            Dims ``sample``, (``target``), then the layer's.

        Examples
        --------
        >>> import torch, algebra as ia
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
        >>> ia.model(net.eval()).on(torch.rand(2, 4)).layer("1").conductance(0, steps=8).compute().dims
        ('sample', 'feature')
        """
        params = self._path_params("conductance", steps, method, baseline)
        return self._attribution("conductance", target, params)

    def internal_influence(
        self, target: Any, steps: int = 50, method: str = "gausslegendre", baseline: Any = 0.0
    ) -> Expr:
        """Internal influence: the gradient with respect to the selected layer integrated
        along the input path from ``baseline`` (Captum's InternalInfluence).

        The path is the one integrated gradients of the same steps, rule and baseline
        use: both share its forward and batched backward.

        Parameters
        ----------
        target : int, sequence of int, "pred", "label", "all", ia.topk(k), ia.classes([...]), ia.units(...) or callable
        steps : int, default 50
        method : str, default "gausslegendre"
        baseline : float, torch.Tensor or Query, default 0.0

        Returns
        -------
        Expr

        Examples
        --------
        >>> import torch, algebra as ia
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
        >>> q = ia.model(net.eval()).on(torch.rand(2, 4))
        >>> q.layer("1").internal_influence("all", steps=8).compute().sizes
        Frozen({'sample': 2, 'target': 3, 'feature': 8})
        """
        params = self._path_params("internal_influence", steps, method, baseline)
        return self._attribution("internal_influence", target, params)
