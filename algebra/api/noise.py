"""Noise as an operator: a query over noisy copies of its inputs, and SmoothGrad as its
shorthand (mixed into :class:`~algebra.api.query.Query`)."""

from __future__ import annotations

from typing import Any

from ..errors import did_you_mean
from ..ir.attribution import check_flag
from ..ir.node import Node
from ..ir.views import Noise, base_of, noise_of, rebased, source_of
from ..kernels.noise import SMOOTH_KINDS, check_samples, check_stdev
from ..kernels.noise_runs import check_noise
from .expr import Expr
from .methods import check_params, method_of
from .params import seed_param, tensor_ref


class NoiseMethods:
    """``noise`` and ``smoothgrad`` (mixed into ``Query``)."""

    node: Node

    def _with(self, node: Node) -> Any:
        raise NotImplementedError  # Query rebuilds itself with its filters

    def noise(
        self,
        samples: int = 50,
        stdev: float = 0.15,
        relative: bool = True,
        seed: int | None = None,
        noise: Any = None,
    ) -> Any:
        """The query over ``samples`` noisy copies of its inputs, along a ``noise`` dim.

        Every method and verb composes with it: ``q.noise(50).saliency(t).mean("noise")``
        is SmoothGrad, ``.square().mean("noise")`` SmoothGrad², ``.var("noise")`` VarGrad,
        and ``q.noise(8).integrated_gradients(t)`` Captum's NoiseTunnel over integrated
        gradients. The copies are one point set: every method and target on them shares
        one forward and one batched backward, chunked under the memory budget. Targets
        resolve at the clean inputs (each copy explains its sample's prediction), and the
        per-sample columns are the clean inputs'. Edits apply to the clean inputs; the
        noise is added last.

        Parameters
        ----------
        samples : int, default 50
            Noisy copies per sample (at least 1).
        stdev : float, default 0.15
            Standard deviation of the Gaussian noise (at least 0): a fraction of each
            sample's value range ``max - min`` when ``relative`` (the SmoothGrad paper),
            else absolute (Captum's ``stdevs``).
        relative : bool, default True
        seed : int, optional
            Seed of the draws (made on the CPU, so a seed gives the same noise on every
            device); without one, torch's global RNG when computed.
        noise : torch.Tensor, optional
            The draws themselves, ``[S, N, ...]`` or ``[S, ...]`` (shared by all samples),
            added as given in place of drawn noise (``samples``, ``stdev``, ``relative``
            and ``seed`` are then not used): the way to reproduce another library's noise.

        Returns
        -------
        Query

        Examples
        --------
        >>> import torch, algebra as ia
        >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
        >>> q.noise(8, seed=0).saliency(0).compute().sizes
        Frozen({'sample': 2, 'noise': 8, 'feature': 4})
        >>> q.noise(0)
        Traceback (most recent call last):
        ValueError: samples: expected an integer >= 1; got 0
        """
        if noise_of(self.node) is not None:
            raise ValueError(
                f"noise: the query already has noise ({noise_of(self.node).describe()})"
            )  # type: ignore[union-attr]
        relative = check_flag(relative, "relative")
        seed = seed_param(seed)
        given = None
        if noise is not None:
            given = tensor_ref(check_noise(noise, source_of(self.node).inputs.value))
            samples = int(noise.shape[0])
        samples, stdev = check_samples(samples), check_stdev(stdev)
        node = Noise(base_of(self.node), samples, stdev, relative, seed, given)
        return self._with(rebased(self.node, node))

    def smoothgrad(
        self,
        target: Any,
        base: str = "saliency",
        samples: int = 50,
        stdev: float = 0.15,
        kind: str = "smoothgrad",
        seed: int | None = None,
        **base_params: Any,
    ) -> Expr:
        """SmoothGrad, SmoothGrad² or VarGrad of ``base`` over noisy copies of the inputs.

        Shorthand for ``q.noise(samples, stdev, seed=seed).<base>(target, **base_params)``
        followed by ``.mean("noise")`` (``kind="smoothgrad"``), ``.square().mean("noise")``
        (``"smoothgrad_sq"``) or ``.var("noise")`` (``"vargrad"``: the population variance),
        as Captum's ``NoiseTunnel`` defines them.

        Parameters
        ----------
        target : target spec
            As for any attribution method.
        base : str, default "saliency"
            The method smoothed (any attribution method's name).
        samples, stdev, seed
            As for :meth:`noise` (the noise is relative to each sample's value range).
        kind : {"smoothgrad", "smoothgrad_sq", "vargrad"}, default "smoothgrad"
        **base_params
            The base method's own parameters (e.g. ``abs=False``, ``steps=16``).

        Returns
        -------
        Expr

        Examples
        --------
        >>> import torch, algebra as ia
        >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
        >>> e = q.smoothgrad("all", samples=8, kind="vargrad", seed=0)
        >>> e
        Expr(saliency(target='all', abs=True) on noise(samples=8, stdev=0.15, seed=0).var(['noise']))
        >>> e.compute().sizes
        Frozen({'sample': 2, 'target': 3, 'feature': 4})
        """
        if kind not in SMOOTH_KINDS:
            raise ValueError(
                f"kind: expected one of {', '.join(map(repr, SMOOTH_KINDS))}; got {kind!r}."
                + (did_you_mean(kind, SMOOTH_KINDS) if isinstance(kind, str) else "")
            )
        noisy = self.noise(samples, stdev, seed=seed)
        bound = method_of(noisy, base)
        check_params(base, bound, base_params)
        expr = bound(target, **base_params)
        if kind == "vargrad":
            return expr.var("noise")
        if kind == "smoothgrad_sq":
            expr = expr.square()
        return expr.mean("noise")
