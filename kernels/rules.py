"""Propagation rules: a forward inside the block records modified backward passes.

A :class:`~torch.overrides.TorchFunctionMode` sees every torch call made during the
forward, whether a module (``nn.ReLU``), a function (``F.relu``, ``torch.relu``), a method
(``x.relu()``, ``x.relu_()``) or an ATen operator (exported models). It substitutes an
autograd Function whose backward is the rule, so module hooks (which miss the functional
forms) are not needed, and the user's module is never touched. Backward passes run after
the block as well as inside it; batched backwards (``is_grads_batched``) work.

Guided backpropagation passes a ReLU's gradient back only where both the forward input and
the incoming gradient are positive; deconvolution only where the incoming gradient is
positive (Captum's GuidedBackprop and Deconvolution, which hook ``nn.ReLU`` modules only).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator
from typing import Any, Literal

import torch
from torch.overrides import TorchFunctionMode

from .capture import hookable

ReluRule = Literal["guided_backprop", "deconvolution"]
RELU_RULES = ("guided_backprop", "deconvolution")

# (function name, args, kwargs) -> result, for the names a rule overrides.
Handler = Callable[[Callable[..., Any], str, tuple, dict], Any]


def function_name(func: Callable[..., Any]) -> str:
    """The plain name of a torch function, method or ATen operator (``"relu_"`` for all forms).

    Examples
    --------
    >>> [function_name(f) for f in (torch.relu, torch.Tensor.relu_, torch.ops.aten.relu.default)]
    ['relu', 'relu_', 'relu']
    """
    if isinstance(func, torch._ops.OpOverload):
        return func._schema.name.split("::")[-1]
    return getattr(func, "__name__", "")


def bind(signature: inspect.Signature, args: tuple, kwargs: dict) -> dict[str, Any]:
    """Arguments of a call by name, defaults filled in (a function's reference signature).

    Examples
    --------
    >>> sig = inspect.signature(lambda input, inplace=False: None)
    >>> bind(sig, (1,), {})
    {'input': 1, 'inplace': False}
    """
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    return dict(bound.arguments)


class RuleMode(TorchFunctionMode):
    """Route the calls named in ``handlers`` to them while grad mode is on; run the rest.

    Examples
    --------
    >>> def double(func, name, args, kwargs):
    ...     return func(*args, **kwargs) * 2
    >>> with RuleMode({"relu": double}):
    ...     torch.relu(torch.tensor([-1.0, 3.0]))
    tensor([0., 6.])
    """

    def __init__(self, handlers: dict[str, Handler]):
        super().__init__()
        self.handlers = handlers

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = function_name(func)
        handler = self.handlers.get(name) if torch.is_grad_enabled() else None
        if handler is None:
            return func(*args, **kwargs)
        return handler(func, name, args, kwargs)


def refuse_scripted(module: torch.nn.Module | None, method: str) -> None:
    """A TorchScript model runs its operators outside Python, where no rule can reach them.

    Examples
    --------
    >>> refuse_scripted(torch.jit.script(torch.nn.ReLU()), "guided_backprop")
    Traceback (most recent call last):
    ValueError: guided_backprop: a TorchScript model runs its operators outside Python, so its backward rules cannot be replaced; load the model as a Python module or a torch.export archive
    """
    if module is not None and not hookable(module):
        raise ValueError(
            f"{method}: a TorchScript model runs its operators outside Python, so its "
            "backward rules cannot be replaced; load the model as a Python module or a "
            "torch.export archive"
        )


class _ModifiedRelu(torch.autograd.Function):
    """ReLU forward; backward ``relu(grad)``, masked by the forward's positives when guided."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, guided: bool, inplace: bool) -> torch.Tensor:  # type: ignore[override]
        ctx.mask = (x > 0) if guided else None
        if inplace:
            ctx.mark_dirty(x)
            return x.clamp_(min=0)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:  # type: ignore[override]
        passed = grad.clamp(min=0)
        if ctx.mask is not None:
            passed = passed * ctx.mask
        return passed, None, None


_RELU_SIGNATURE = inspect.signature(lambda input, inplace=False: None)


def _relu_handler(guided: bool) -> Handler:
    def handle(func: Callable[..., Any], name: str, args: tuple, kwargs: dict) -> Any:
        bound = bind(_RELU_SIGNATURE, args, kwargs)
        x = bound["input"]
        if not isinstance(x, torch.Tensor) or not x.requires_grad:
            return func(*args, **kwargs)
        inplace = name.endswith("_") or bool(bound["inplace"])
        return _ModifiedRelu.apply(x, guided, inplace)

    return handle


@contextlib.contextmanager
def relu_rules(rule: ReluRule, module: torch.nn.Module | None = None) -> Iterator[None]:
    """Within the block, every ReLU records guided backprop's or deconvolution's backward.

    ``rule`` is ``"guided_backprop"`` or ``"deconvolution"``. Catches ``nn.ReLU`` (also
    in place), ``F.relu``, ``F.relu_``, ``torch.relu``, ``torch.relu_``, ``x.relu()``,
    ``x.relu_()`` and ATen ``relu`` operators. Pass ``module`` to refuse TorchScript models,
    whose ReLUs no rule can reach. Nothing is registered on any module.

    Examples
    --------
    >>> x = torch.tensor([[-1.0, 2.0]], requires_grad=True)
    >>> with relu_rules("guided_backprop"):
    ...     y = torch.relu(x) * torch.tensor([3.0, -1.0])
    >>> torch.autograd.grad(y.sum(), x)[0]  # the negative gradient is stopped
    tensor([[0., 0.]])
    >>> with relu_rules("deconvolution"):
    ...     y = torch.relu(x) * torch.tensor([3.0, -1.0])
    >>> torch.autograd.grad(y.sum(), x)[0]  # passed where the input was negative
    tensor([[3., 0.]])
    """
    if rule not in RELU_RULES:
        raise ValueError(f"rule: expected one of {RELU_RULES}; got {rule!r}")
    refuse_scripted(module, rule)
    handle = _relu_handler(guided=rule == "guided_backprop")
    with RuleMode({"relu": handle, "relu_": handle}):
        yield
