"""Propagation rules and sampled baselines: guided backpropagation, deconvolution, DeepLift,
DeepLiftShap, GradientSHAP and expected gradients (mixed into ``Query``).

Each validates its parameters and builds an :class:`~algebra.ir.attribution.Attribution`;
the optimizer runs every method on the same points with one forward and one batched
backward. The ReLU rules and DeepLift's rules replace backward passes during the forward
only (:mod:`~algebra.kernels.rules`, :mod:`~algebra.kernels.deeplift`): the model is never
modified, and functional ReLUs (``F.relu``, ``x.relu()``, in place) are caught as well as
``nn.ReLU`` modules.
"""

from __future__ import annotations

from typing import Any

from ..ir.attribution import check_flag
from ..ir.node import Node
from ..ir.views import source_of
from ..kernels.noise import check_samples, check_stdev
from ..kernels.probes import check_deeplift
from ..kernels.rules import refuse_scripted
from .expr import Expr
from .params import baseline_param, baselines_param, seed_param


class PropagationMethods:
    """Guided backprop, deconvolution, DeepLift(Shap), GradientSHAP, expected gradients."""

    node: Node

    def _attribution(self, method: str, target: Any, params: tuple[tuple[str, Any], ...]) -> Expr:
        raise NotImplementedError  # Query builds the node (and applies its filters)

    def _module(self) -> Any:
        return source_of(self.node).model.torch_module

    def guided_backprop(self, target: Any) -> Expr:
        """Guided backpropagation: the gradient, with every ReLU passing it back only where
        both its input and the incoming gradient are positive (Captum's GuidedBackprop).

        Unlike Captum, which hooks ``nn.ReLU`` modules, functional ReLUs are covered too.

        Parameters
        ----------
        target : int, sequence of int, "pred", "label", "all", ia.topk(k), ia.classes([...]), ia.units(...) or callable

        Returns
        -------
        Expr

        Examples
        --------
        >>> import torch, algebra as ia
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
        >>> ia.model(net.eval()).on(torch.rand(2, 4)).guided_backprop("all").compute().sizes
        Frozen({'sample': 2, 'target': 3, 'feature': 4})
        """
        refuse_scripted(self._module(), "guided_backprop")
        return self._attribution("guided_backprop", target, ())

    def deconvolution(self, target: Any) -> Expr:
        """Deconvolution: the gradient, with every ReLU passing back only its positive part
        (Captum's Deconvolution).

        Parameters
        ----------
        target : int, sequence of int, "pred", "label", "all", ia.topk(k), ia.classes([...]), ia.units(...) or callable

        Returns
        -------
        Expr

        Examples
        --------
        >>> import torch, algebra as ia
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
        >>> ia.model(net.eval()).on(torch.rand(2, 4)).deconvolution(0).compute().dims
        ('sample', 'feature')
        """
        refuse_scripted(self._module(), "deconvolution")
        return self._attribution("deconvolution", target, ())

    def deeplift(self, target: Any, baseline: Any = 0.0, multiply_by_inputs: bool = True) -> Expr:
        """DeepLift (rescale rule): multipliers times ``input - baseline`` (Captum's DeepLift).

        The inputs and their references run as one paired batch; the rules cover ReLU,
        ELU, leaky ReLU, sigmoid, tanh, softplus, softmax and max pooling in every form
        (modules, functions, methods, in place), and everything linear in the activations.
        Any other nonlinearity (GELU, layer norm, attention, a product of activations, ...)
        is refused when the method is called, naming it. The result carries a ``delta``
        coordinate (the attribution's sum minus ``f(x) - f(baseline)``; 0 up to rounding)
        from the paired logits, with no extra forward. At a layer (``q.layer(name)``), the
        layer's activations are attributed (Captum's LayerDeepLift).

        Parameters
        ----------
        target : int, sequence of int, "pred", "label", "all", ia.topk(k), ia.classes([...]), ia.units(...) or callable
        baseline : float, torch.Tensor or Query, default 0.0
            The reference: a number, a tensor broadcastable to the inputs, or another
            query's inputs of the same shape.
        multiply_by_inputs : bool, default True
            ``False`` gives the multipliers alone (local attribution, as Captum's), with no
            delta.

        Returns
        -------
        Expr

        Examples
        --------
        >>> import torch, algebra as ia
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
        >>> r = ia.model(net.eval()).on(torch.rand(2, 4)).deeplift(0).compute()
        >>> bool(abs(r.delta).max() < 1e-5)
        True
        """
        check_deeplift(self._module(), source_of(self.node).inputs.value)
        params = (
            ("baseline", baseline_param(self.node, baseline)),
            ("multiply_by_inputs", check_flag(multiply_by_inputs, "multiply_by_inputs")),
        )
        return self._attribution("deeplift", target, params)

    def deeplift_shap(self, target: Any, baselines: Any, multiply_by_inputs: bool = True) -> Expr:
        """DeepLiftShap: DeepLift of every input against each of ``baselines``, averaged
        (Captum's DeepLiftShap); all pairs in one paired batch.

        The ``delta`` coordinate is the mean over the baselines of each pair's delta.

        Parameters
        ----------
        target : int, sequence of int, "pred", "label", "all", ia.topk(k), ia.classes([...]), ia.units(...) or callable
        baselines : torch.Tensor
            Reference inputs ``[B, ...]`` shaped like the inputs' samples.
        multiply_by_inputs : bool, default True

        Returns
        -------
        Expr

        Examples
        --------
        >>> import torch, algebra as ia
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
        >>> q = ia.model(net.eval()).on(torch.rand(2, 4))
        >>> q.deeplift_shap(1, torch.rand(5, 4)).compute().dims
        ('sample', 'feature')
        """
        check_deeplift(self._module(), source_of(self.node).inputs.value)
        params = (
            ("baselines", baselines_param(self.node, baselines)),
            ("multiply_by_inputs", check_flag(multiply_by_inputs, "multiply_by_inputs")),
        )
        return self._attribution("deeplift_shap", target, params)

    def gradient_shap(
        self,
        target: Any,
        baselines: Any,
        samples: int = 50,
        stdev: float = 0.0,
        seed: int | None = None,
        multiply_by_inputs: bool = True,
    ) -> Expr:
        """GradientSHAP: the mean over ``samples`` random draws of the gradient at
        ``b + alpha (x' - b)`` times ``x' - b`` (Captum's GradientShap).

        Each draw picks a baseline ``b`` among ``baselines``, ``alpha`` uniform in
        ``[0, 1)`` and ``x'`` the input plus Gaussian noise of (absolute) ``stdev``. All
        draws are one point set: one forward, one batched backward. The ``delta``
        coordinate is the mean over draws of each draw's delta, from the baselines' logits
        (one forward over the ``B`` baselines) and the inputs' (with noise, one forward
        over the noisy inputs). At a layer, its activations are attributed (Captum's
        LayerGradientShap).

        Parameters
        ----------
        target : int, sequence of int, "pred", "label", "all", ia.topk(k), ia.classes([...]), ia.units(...) or callable
        baselines : torch.Tensor
            Reference inputs ``[B, ...]`` shaped like the inputs' samples.
        samples : int, default 50
            Draws per sample.
        stdev : float, default 0.0
            Standard deviation of the noise on the inputs (absolute, as Captum's ``stdevs``).
        seed : int, optional
            Seed of the draws (made on the CPU); without one, torch's global RNG.
        multiply_by_inputs : bool, default True
            ``False`` averages the gradients alone (local attribution), with no delta.

        Returns
        -------
        Expr

        Examples
        --------
        >>> import torch, algebra as ia
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
        >>> q = ia.model(net.eval()).on(torch.rand(2, 4))
        >>> r = q.gradient_shap("all", torch.zeros(3, 4), samples=16, seed=0).compute()
        >>> r.sizes, r.delta.dims
        (Frozen({'sample': 2, 'target': 3, 'feature': 4}), ('sample', 'target'))
        """
        params = (
            ("baselines", baselines_param(self.node, baselines)),
            ("samples", check_samples(samples)),
            ("stdev", check_stdev(stdev)),
            ("seed", seed_param(seed)),
            ("multiply_by_inputs", check_flag(multiply_by_inputs, "multiply_by_inputs")),
        )
        return self._attribution("gradient_shap", target, params)

    def expected_gradients(
        self,
        target: Any,
        data: Any,
        samples: int = 50,
        seed: int | None = None,
        multiply_by_inputs: bool = True,
    ) -> Expr:
        """Expected gradients: GradientSHAP without noise, with a data set as the baselines.

        Parameters
        ----------
        target : int, sequence of int, "pred", "label", "all", ia.topk(k), ia.classes([...]), ia.units(...) or callable
        data : torch.Tensor
            Samples of the data ``[B, ...]`` (the baselines drawn from).
        samples : int, default 50
        seed : int, optional
        multiply_by_inputs : bool, default True

        Returns
        -------
        Expr

        Examples
        --------
        >>> import torch, algebra as ia
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
        >>> q = ia.model(net.eval()).on(torch.rand(2, 4))
        >>> q.expected_gradients(0, torch.rand(32, 4), samples=8, seed=1).compute().dims
        ('sample', 'feature')
        """
        params = (
            ("data", baselines_param(self.node, data, "data")),
            ("samples", check_samples(samples)),
            ("seed", seed_param(seed)),
            ("multiply_by_inputs", check_flag(multiply_by_inputs, "multiply_by_inputs")),
        )
        return self._attribution("expected_gradients", target, params)
