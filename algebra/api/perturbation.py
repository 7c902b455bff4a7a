"""The perturbation family of attribution methods, as methods of :class:`~algebra.api.query.Query`.

Each evaluates perturbed copies of the inputs (or of a layer's activation) by forward
passes only. Every perturbation expression on the same inputs and baseline in one
``ia.compute`` goes through one deduplicated stream of forwards, and every target of a
design is read off the same logits. Players (``groups``) are checked here, at
construction, against the inputs and the window; at a layer, whose shape is known only
when the model runs, they are checked then.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..ir.attribution import check_flag
from ..ir.node import Node, Ref
from ..ir.players import (
    PlayerSpecs,
    check_positive,
    check_samples,
    check_seed,
    check_window_size,
)
from ..ir.views import layer_of, source_of, window_of
from ..kernels.checks import fingerprint
from ..kernels.coalitions import EXACT_LIMIT
from ..kernels.occlusion import window_shapes
from ..kernels.players import player_mask
from ..kernels.run_copies import players_of
from ..optimizer.simplify import player_spec
from .expr import Expr
from .params import baseline_param


def _shape_and_window(view: Node) -> tuple[tuple[int, ...], Any]:
    return source_of(view).shape, window_of(view)


def groups_param(view: Node, groups: Any) -> tuple[Any, int | None]:
    """``groups`` as an expression holds it, and the number of players (``None`` at a
    layer, whose shape is not known yet).

    Examples
    --------
    >>> import torch, algebra as ia
    >>> q = ia.model(torch.nn.Linear(6, 2)).on(torch.rand(3, 6))
    >>> groups_param(q.node, None), groups_param(q.node, torch.tensor([0, 0, 1, 1, 2, 2]))[1]
    ((None, 6), 3)
    >>> groups_param(q.node, torch.tensor([0, 0, 2, 2, 3, 3]))
    Traceback (most recent call last):
    ValueError: groups: player ids must run 0..P-1 without gaps; id 1 is missing (ids present: 0, 2, 3)
    """
    stored: Any
    if groups is None or isinstance(groups, PlayerSpecs):
        stored = groups
    elif isinstance(groups, (torch.Tensor, np.ndarray)):
        mask = torch.as_tensor(groups).detach().cpu()
        player_mask(mask, tuple(mask.shape))  # integer ids without gaps, whatever the shape
        stored = Ref(mask, fingerprint(mask))
    else:
        raise TypeError(
            "groups: expected None (the default players), ia.grid(rows, cols), "
            f"ia.patches(size) or an integer tensor of player ids; got {type(groups).__name__}"
        )
    if layer_of(view) is not None:
        return stored, None
    shape, window = _shape_and_window(view)
    try:
        count = players_of(player_spec(stored, window), shape).count
    except ValueError as error:
        message = str(error)
        raise ValueError(
            message
            if message.startswith(("groups", "window"))
            else f"groups: {stored!r} does not fit: {message}"
        ) from None
    return stored, count


class PerturbationMethods:
    """Shapley values, KernelSHAP, LIME, occlusion, feature ablation and permutation."""

    node: Node

    def _attribution(self, method: str, target: Any, params: tuple[tuple[str, Any], ...]) -> Expr:
        raise NotImplementedError  # Query builds the node (and applies its filters)

    def shapley(
        self,
        target: Any,
        groups: Any = None,
        samples: int | str = 25,
        baseline: Any = 0.0,
        seed: int | None = None,
        antithetic: bool = False,
    ) -> Expr:
        """Shapley values of the players, by permutation sampling (as Captum's
        ShapleyValueSampling), or exactly over all coalitions.

        Each sampled permutation adds the players one by one, from all at the baseline to
        the input; a player's value is its mean gain. The values of each sample and target
        sum to ``f(x) - f(baseline)`` exactly (efficiency). This is the paper's identity
        (``ia.options.identity``); after ``window(...)`` only the window's features are
        players and the rest stay at their input values.

        Parameters
        ----------
        target : int, sequence of int, "pred", "label", "all", ia.topk(k), ia.classes([...]) or callable
            The output(s) to explain; all targets cost the forwards of one.
        groups : ia.grid, ia.patches or integer tensor, optional
            The players. Default: an 8 x 8 grid for images, every feature otherwise.
        samples : int or "exact", default 25
            Permutations; ``"exact"`` enumerates all ``2**P`` coalitions (at most 16 players).
        baseline : float, torch.Tensor or Query, default 0.0
            What a removed player's features become.
        seed : int, optional
            Seed of the permutations (identical results run to run, chunked or not, on any
            device); ``None`` draws from torch's global generator.
        antithetic : bool, default False
            Follow each permutation by its reverse.

        Returns
        -------
        Expr
            At input resolution, with the player map as the ``player`` coordinate.

        Examples
        --------
        >>> import torch, algebra as ia
        >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
        >>> r = q.shapley("pred", samples="exact").compute()
        >>> r.dims, r.attrs["samples"]
        (('sample', 'feature'), 'exact')
        """
        samples = check_samples(samples, exact=True)
        stored, count = groups_param(self.node, groups)
        if samples == "exact" and count is not None and count > EXACT_LIMIT:
            raise ValueError(
                f'samples: "exact" enumerates 2**P coalitions and allows at most {EXACT_LIMIT} '
                f"players; these groups make {count}. Use fewer players (groups=ia.grid(4, 4)) "
                "or sampling (samples=<int>)"
            )
        params = (
            ("groups", stored),
            ("samples", samples),
            ("baseline", baseline_param(self.node, baseline)),
            ("seed", check_seed(seed)),
            ("antithetic", check_flag(antithetic, "antithetic")),
        )
        return self._attribution("shapley", target, params)

    def kernel_shap(
        self,
        target: Any,
        groups: Any = None,
        samples: int = 200,
        baseline: Any = 0.0,
        seed: int | None = None,
    ) -> Expr:
        """KernelSHAP: a linear model of the players fitted to coalitions drawn with the
        Shapley kernel, pinned to ``f(baseline)`` and ``f(x)``; it converges to the
        Shapley values as ``samples`` grows.

        The fit is batched over samples and targets on the model's device.

        Parameters
        ----------
        target : target spec
            As for any method.
        groups : ia.grid, ia.patches or integer tensor, optional
            The players (default as for :meth:`shapley`).
        samples : int, default 200
            Coalitions drawn, besides the empty and the full one.
        baseline : float, torch.Tensor or Query, default 0.0
        seed : int, optional

        Returns
        -------
        Expr

        Examples
        --------
        >>> import torch, algebra as ia
        >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
        >>> q.kernel_shap(0, samples=50, seed=0).compute().sizes
        Frozen({'sample': 2, 'feature': 4})
        """
        samples = check_samples(samples)
        stored, _ = groups_param(self.node, groups)
        params = (
            ("groups", stored),
            ("samples", samples),
            ("baseline", baseline_param(self.node, baseline)),
            ("seed", check_seed(seed)),
        )
        return self._attribution("kernel_shap", target, params)

    def lime(
        self,
        target: Any,
        groups: Any = None,
        samples: int = 200,
        baseline: Any = 0.0,
        kernel_width: float = 1.0,
        seed: int | None = None,
    ) -> Expr:
        """LIME: a linear model of the players (with an intercept), fitted to random
        coalitions weighted by their similarity to the input.

        Each player is kept with probability 1/2; a copy weighs
        ``exp(-d**2 / (2 kernel_width**2))``, ``d`` its cosine distance to the input (as
        Captum's default). Weighted least squares on the device, batched over samples and
        targets.

        Parameters
        ----------
        target : target spec
        groups : ia.grid, ia.patches or integer tensor, optional
        samples : int, default 200
        baseline : float, torch.Tensor or Query, default 0.0
        kernel_width : float, default 1.0
        seed : int, optional

        Returns
        -------
        Expr

        Examples
        --------
        >>> import torch, algebra as ia
        >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
        >>> q.lime(ia.topk(2), samples=40, seed=0).compute().dims
        ('sample', 'target', 'feature')
        """
        samples = check_samples(samples)
        stored, _ = groups_param(self.node, groups)
        params = (
            ("groups", stored),
            ("samples", samples),
            ("baseline", baseline_param(self.node, baseline)),
            ("kernel_width", check_positive(kernel_width, "kernel_width")),
            ("seed", check_seed(seed)),
        )
        return self._attribution("lime", target, params)

    def occlusion(self, target: Any, size: Any, stride: Any, baseline: Any = 0.0) -> Expr:
        """Occlusion (as Captum's): the score drop when a sliding window of the input is set
        to the baseline, averaged over the windows covering each feature.

        After ``window(...)`` the windows slide over the projection window only. Occlusion
        attributes the input, not a layer.

        Parameters
        ----------
        target : target spec
        size : int or tuple of int
            The window: an integer is a square over an image's last two dims spanning its
            channels (or a length along 2-D inputs); a tuple gives every non-batch dim.
        stride : int or tuple of int
            The step between windows, for every dim or per dim.
        baseline : float, torch.Tensor or Query, default 0.0

        Returns
        -------
        Expr

        Examples
        --------
        >>> import torch, algebra as ia
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2)).eval()
        >>> q = ia.model(net).on(torch.rand(2, 3, 8, 8))
        >>> q.occlusion(0, size=4, stride=2).compute().sizes
        Frozen({'sample': 2, 'channel': 3, 'y': 8, 'x': 8})
        >>> q.occlusion(0, size=9, stride=2)
        Traceback (most recent call last):
        ValueError: size: the window 9 is larger than the inputs [3, 8, 8] (or not positive)
        """
        size, stride = check_window_size(size, "size"), check_window_size(stride, "stride")
        if layer_of(self.node) is None:
            shape, window = _shape_and_window(self.node)
            if window is not None:
                r0, r1, c0, c1 = window
                shape = (*shape[:-2], r1 - r0, c1 - c0)
            window_shapes(shape, size, stride)
        params = (("size", size), ("stride", stride))
        params += (("baseline", baseline_param(self.node, baseline)),)
        return self._attribution("occlusion", target, params)

    def feature_ablation(self, target: Any, groups: Any = None, baseline: Any = 0.0) -> Expr:
        """Feature ablation (as Captum's): the score drop when one player is set to the
        baseline, the others kept.

        Parameters
        ----------
        target : target spec
        groups : ia.grid, ia.patches or integer tensor, optional
            The players (default: an 8 x 8 grid for images, every feature otherwise).
        baseline : float, torch.Tensor or Query, default 0.0

        Returns
        -------
        Expr

        Examples
        --------
        >>> import torch, algebra as ia
        >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
        >>> r = q.feature_ablation("all", groups=torch.tensor([0, 0, 1, 1])).compute()
        >>> r.sizes, r.player.values.tolist()
        (Frozen({'sample': 2, 'target': 3, 'feature': 4}), [0, 0, 1, 1])
        """
        stored, _ = groups_param(self.node, groups)
        params = (("groups", stored), ("baseline", baseline_param(self.node, baseline)))
        return self._attribution("feature_ablation", target, params)

    def feature_permutation(self, target: Any, groups: Any = None, seed: int | None = None) -> Expr:
        """Feature permutation (as Captum's): the score drop when one player's features are
        shuffled across the samples of the batch (each player its own permutation).

        Parameters
        ----------
        target : target spec
        groups : ia.grid, ia.patches or integer tensor, optional
        seed : int, optional
            Seed of the permutations.

        Returns
        -------
        Expr

        Examples
        --------
        >>> import torch, algebra as ia
        >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(5, 4))
        >>> q.feature_permutation(1, seed=0).compute().dims
        ('sample', 'feature')
        """
        n = source_of(self.node).n
        if n < 2:
            raise ValueError(
                "feature_permutation: shuffles players across the samples of the batch and "
                f"needs at least 2 samples; the inputs have {n}"
            )
        stored, _ = groups_param(self.node, groups)
        params = (("groups", stored), ("seed", check_seed(seed)))
        return self._attribution("feature_permutation", target, params)
