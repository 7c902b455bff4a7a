"""Evaluation metrics of attribution maps, as lazy methods of :class:`~algebra.api.expr.Expr`.

Each builds a :class:`~algebra.ir.metrics.Metric` node over the map; nothing runs until
``compute``. Metrics of several maps of the same inputs in one ``ia.compute`` share one
stream of forwards (sensitivity-max shares one batch of noisy inputs, re-attributed
through the optimizer). A sample filter (``where``) is applied after the metric, which
scores each sample on its own.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..ir.attribution import check_flag
from ..ir.metrics import MAP_VERBS, Metric
from ..ir.node import Node, Ref
from ..ir.players import check_seed
from ..ir.relational import Where
from ..ir.views import source_of
from ..kernels.checks import as_baseline, fingerprint


def _unfiltered(node: Node) -> tuple[Node, list[Any]]:
    """``node`` without its sample filters (a map's verbs kept), and the filters, inner first."""
    chain, filters = [], []
    while isinstance(node, (Where, *MAP_VERBS)):
        if isinstance(node, Where):
            filters.append(node.predicate)
        else:
            chain.append(node)
        node = node.child  # type: ignore[attr-defined]
    for verb in reversed(chain):
        node = replace(verb, child=node)
    return node, filters[::-1]


def _baseline(view: Node, baseline: Any) -> Any:
    if getattr(baseline, "node", None) is not None:
        raise TypeError("baseline: a metric's baseline is a number or a tensor, not a query")
    base = as_baseline(baseline, source_of(view).inputs.value)
    return base if isinstance(base, float) else Ref(base, fingerprint(base))


class MetricMethods:
    """Deletion, insertion, infidelity, sensitivity-max, faithfulness correlation."""

    node: Node

    def _metric(self, kind: str, params: tuple[tuple[str, Any], ...]) -> Any:
        node, filters = _unfiltered(self.node)
        out: Node = Metric(node, kind, params)
        for predicate in filters:
            out = Where(out, predicate)
        return type(self)(out)  # type: ignore[call-arg]

    def deletion(self, steps: int = 20, baseline: Any = 0.0) -> Any:
        """The target score as the map's most important features are removed.

        Features are ranked by decreasing attribution; step ``s`` of ``steps`` sets the top
        ``s / steps`` of them to ``baseline``. A faithful map makes the score fall fast: a
        small area under the curve.

        Parameters
        ----------
        steps : int, default 20
        baseline : float or torch.Tensor, default 0.0

        Returns
        -------
        Expr
            A curve over a ``fraction`` dim (0 to 1), per sample and target, with the area
            under it as the ``area`` coordinate; named for the map's method.

        Examples
        --------
        >>> import torch, algebra as ia
        >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
        >>> r = q.saliency("pred").deletion(steps=4).compute()
        >>> r.name, r.dims, r.fraction.values.tolist(), r.area.dims
        ('saliency', ('sample', 'fraction'), [0.0, 0.25, 0.5, 0.75, 1.0], ('sample',))
        """
        return self._metric("deletion", (("steps", steps), ("baseline", self._base(baseline))))

    def insertion(self, steps: int = 20, baseline: Any = 0.0) -> Any:
        """The target score as the map's most important features are added to the baseline.

        Step ``s`` keeps only the top ``s / steps`` of the ranked features, the rest at
        ``baseline``. A faithful map makes the score rise fast: a large area.

        Parameters
        ----------
        steps : int, default 20
        baseline : float or torch.Tensor, default 0.0

        Returns
        -------
        Expr
            A curve over ``fraction`` with its ``area`` coordinate.

        Examples
        --------
        >>> import torch, algebra as ia
        >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
        >>> q.input_x_gradient(ia.topk(2)).insertion(steps=2).compute().sizes
        Frozen({'sample': 2, 'target': 2, 'fraction': 3})
        """
        return self._metric("insertion", (("steps", steps), ("baseline", self._base(baseline))))

    def infidelity(
        self,
        samples: int = 10,
        stdev: float = 0.1,
        seed: int | None = None,
        normalize: bool = False,
    ) -> Any:
        """Infidelity (as Captum's): how badly ``attr . I`` predicts ``f(x) - f(x - I)`` for
        Gaussian noise ``I`` of ``stdev``, averaged over ``samples`` draws (lower is better).

        Parameters
        ----------
        samples : int, default 10
        stdev : float, default 0.1
        seed : int, optional
            Seed of the noise (``None``: torch's global generator).
        normalize : bool, default False
            Scale the attributions by the best least-squares factor first (Captum's
            ``normalize``).

        Returns
        -------
        Expr
            One value per sample and target.

        Examples
        --------
        >>> import torch, algebra as ia
        >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
        >>> float(q.input_x_gradient(0).infidelity(seed=0).compute().max()) >= 0
        True
        """
        params = (
            ("samples", samples),
            ("stdev", stdev),
            ("seed", check_seed(seed)),
            ("normalize", check_flag(normalize, "normalize")),
        )
        return self._metric("infidelity", params)

    def sensitivity_max(
        self, radius: float = 0.02, samples: int = 10, seed: int | None = None
    ) -> Any:
        """Sensitivity-max (as Captum's): the largest relative change of the map when the
        inputs move uniformly within ``radius`` (lower is steadier).

        The map is re-attributed at ``samples`` noisy copies of the inputs, stacked as one
        batch and planned with the other attributions of that batch (gradient methods
        share its forward and batched backward), for the classes the map explains.

        Parameters
        ----------
        radius : float, default 0.02
            Half-width of the L-inf ball the noise is drawn from.
        samples : int, default 10
        seed : int, optional

        Returns
        -------
        Expr
            One value per sample and target.

        Examples
        --------
        >>> import torch, algebra as ia
        >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
        >>> float(q.saliency(0).sensitivity_max(seed=0).compute().max())  # a linear model
        0.0
        """
        params = (("radius", radius), ("samples", samples), ("seed", check_seed(seed)))
        return self._metric("sensitivity_max", params)

    def faithfulness_correlation(
        self,
        samples: int = 50,
        subset: int | None = None,
        seed: int | None = None,
        baseline: Any = 0.0,
    ) -> Any:
        """Faithfulness correlation: the correlation, over ``samples`` random subsets of
        ``subset`` players, between the map's sum over a subset and the score drop when the
        subset is set to ``baseline`` (higher is better).

        Players are an image's positions (spanning the channels), other inputs' features.

        Parameters
        ----------
        samples : int, default 50
        subset : int, optional
            Players removed at once (default: a tenth of them).
        seed : int, optional
        baseline : float or torch.Tensor, default 0.0

        Returns
        -------
        Expr
            One value per sample and target.

        Examples
        --------
        >>> import torch, algebra as ia
        >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
        >>> r = q.input_x_gradient(0).faithfulness_correlation(samples=20, seed=0).compute()
        >>> r.round(6).values.tolist()  # exact for a linear model and a zero baseline
        [1.0, 1.0]
        """
        params = (
            ("samples", samples),
            ("subset", subset),
            ("seed", check_seed(seed)),
            ("baseline", self._base(baseline)),
        )
        return self._metric("faithfulness_correlation", params)

    def _base(self, baseline: Any) -> Any:
        return _baseline(self.node, baseline)
