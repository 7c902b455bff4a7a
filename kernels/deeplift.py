"""DeepLift's rules (rescale, max pooling, softmax) over inputs paired with references.

The inputs and their references run as one batch ``[x; x0]`` (``2N`` rows, see
:func:`paired`), so each nonlinearity sees a row and its reference together: the first
half of its input's first dim are the inputs, the second half the references (a reshape
that keeps the batch outermost, ``[2N * T, D]``, keeps the pairing). Inside
:func:`deeplift_rules` every covered nonlinearity records the rule's backward; the
backward then seeds both halves with the target, as Captum's DeepLift does, and the
gradient of the input half is DeepLift's multiplier.

Rules, as Captum's ``DeepLift`` with ``eps = 1e-10``, with ``dx = x - x0``, ``dy = f(x) - f(x0)``:

- rescale (``relu``, ``elu``, ``leaky_relu``, ``sigmoid``, ``tanh``, ``softplus``, as
  modules, functions, methods, in place or not): the gradient is multiplied by
  ``dy / dx``, or by ``f'`` where ``|dx| < eps``; both halves get the same multiplier.
- max pooling (``max_pool1d/2d/3d``): with ``m = max(y, y0)``, the gradients
  ``g * (m - y0)`` (input half) and ``g0 * (y - m)`` (reference half) are routed back
  through each half's argmax, added, and divided by ``dx`` (the plain gradient where
  ``|dx| < eps``).
- softmax: the rescale rule, then the mean of the result over the row and its reference
  is subtracted (Captum subtracts the mean over the whole batch, which makes a sample's
  map depend on its batch; per pair it equals Captum's for one sample).

The rules catch modules (``nn.ReLU``, ``nn.MaxPool2d``, ...), functions (``F.relu``,
``torch.sigmoid``), methods (``x.tanh()``), in-place forms and ATen operators (exported
models). Captum hooks modules only, and where two of its hooked modules touch (``ReLU``
then ``MaxPool2d``) each reads the other's gradient before its rule: its maps lose
completeness there, these do not.

Everything else must be linear in the activations (linear and convolution layers,
average pooling, batch norm in eval mode, additions, reshapes, concatenation). Nonlinear
functions applied to an activation (``gelu``, ``silu``, ``layer_norm``, ``exp``,
recurrent layers, attention, ...: :mod:`~algebra.kernels.refusals`), a product of two
activations, a division by an activation and batch norm in training mode raise a
``ValueError`` naming them instead of giving a silently wrong map.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import torch

from .pairs import halves
from .refusals import PRODUCTS, QUOTIENTS, UNSUPPORTED, refusal
from .rules import Handler, RuleMode, bind, refuse_scripted

EPS = 1e-10


# Rescale rule -------------------------------------------------------------------------


def _multipliers(x: torch.Tensor, y: torch.Tensor, slope: torch.Tensor, eps: float):
    """``dy / dx`` per pair (both halves), ``f'`` where ``|dx| < eps``."""
    xa, xr = halves(x)
    ya, yr = halves(y)
    dx = torch.cat([xa - xr] * 2)
    dy = torch.cat([ya - yr] * 2)
    return torch.where(dx.abs() < eps, slope, dy / dx)


def _split(dx: torch.Tensor, dy: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(|dx| < eps, dy / dx elsewhere)`` as factors, so backward passes multiply, not select
    (the batched backward has no rule for ``where``)."""
    flat = dx.abs() < eps
    return flat.to(dx.dtype), torch.where(flat, torch.zeros_like(dy), dy / dx)


class _Rescale(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, fn, slope_fn, eps, inplace):  # type: ignore[override]
        y = fn(x)
        ctx.m = _multipliers(x, y, slope_fn(x, y), eps)
        if inplace:
            ctx.mark_dirty(x)
            return x.copy_(y)
        return y

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        return grad * ctx.m, None, None, None, None


def _sig(*required: str, **defaults: Any) -> inspect.Signature:
    """A reference signature: ``required`` positional names, then ``defaults``."""
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    params = [inspect.Parameter(n, kind) for n in required]
    params += [inspect.Parameter(n, kind, default=d) for n, d in defaults.items()]
    return inspect.Signature(params)


# name -> (reference signature, forward from the bound args, derivative from (x, y, args))
_ELEMENTWISE: dict[str, tuple[inspect.Signature, Callable, Callable]] = {
    "relu": (
        _sig("input", inplace=False),
        lambda x, a: x.clamp(min=0),
        lambda x, y, a: (x > 0).to(x.dtype),
    ),
    "elu": (
        _sig("input", alpha=1.0, inplace=False),
        lambda x, a: torch.nn.functional.elu(x, a["alpha"]),
        lambda x, y, a: torch.where(x > 0, torch.ones_like(x), y + a["alpha"]),
    ),
    "leaky_relu": (
        _sig("input", negative_slope=0.01, inplace=False),
        lambda x, a: torch.nn.functional.leaky_relu(x, a["negative_slope"]),
        lambda x, y, a: torch.where(x > 0, 1.0, a["negative_slope"]).to(x.dtype),
    ),
    "sigmoid": (_sig("input"), lambda x, a: x.sigmoid(), lambda x, y, a: y * (1 - y)),
    "tanh": (_sig("input"), lambda x, a: x.tanh(), lambda x, y, a: 1 - y * y),
    "softplus": (
        _sig("input", beta=1.0, threshold=20.0),
        lambda x, a: torch.nn.functional.softplus(x, a["beta"], a["threshold"]),
        lambda x, y, a: torch.where(
            x * a["beta"] > a["threshold"], torch.ones_like(x), (x * a["beta"]).sigmoid()
        ),
    ),
}


def _rescale_handler(eps: float) -> Handler:
    def handle(func: Callable[..., Any], name: str, args: tuple, kwargs: dict) -> Any:
        base = name.rstrip("_")
        signature, fn, slope = _ELEMENTWISE[base]
        if isinstance(func, torch._ops.OpOverload) and base == "elu" and len(args) > 2:
            args, scales = args[:2], args[2:]  # ATen's elu(self, alpha, scale, input_scale)
            if any(float(v) != 1.0 for v in scales):
                raise ValueError(
                    "deeplift: the model applies a scaled elu (selu?), which has no rule"
                )
        bound = bind(signature, args, kwargs)
        x = bound["input"]
        if not _is_activation(x):
            return func(*args, **kwargs)
        _check_paired(x, base)
        inplace = name.endswith("_") or bool(bound.get("inplace", False))
        return _Rescale.apply(
            x, lambda t: fn(t, bound), lambda t, y: slope(t, y, bound), eps, inplace
        )

    return handle


# Softmax rule -------------------------------------------------------------------------


class _Softmax(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, dim, eps):  # type: ignore[override]
        y = x.softmax(dim)
        xa, xr = halves(x)
        ya, yr = halves(y)
        ctx.flat, ctx.ratio = _split(torch.cat([xa - xr] * 2), torch.cat([ya - yr] * 2), eps)
        ctx.y, ctx.dim = y, dim
        return y

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        y = ctx.y
        plain = y * (grad - (grad * y).sum(ctx.dim, keepdim=True))
        u = plain * ctx.flat + grad * ctx.ratio
        # Subtract the mean over each pair of rows (Captum: over the whole batch).
        pairs = u.reshape(2, -1, *u.shape[1:])
        total = pairs.sum(dim=(0, *range(2, pairs.ndim)), keepdim=True)
        return (pairs - total / (2 * y[0].numel())).reshape(u.shape), None, None


_SOFTMAX = _sig("input", dim=None)


def _softmax_handler(eps: float) -> Handler:
    def handle(func: Callable[..., Any], name: str, args: tuple, kwargs: dict) -> Any:
        x = args[0] if args else kwargs.get("input", kwargs.get("self"))
        if not _is_activation(x):
            return func(*args, **kwargs)
        bound = bind(_SOFTMAX, args[:2], {k: v for k, v in kwargs.items() if k == "dim"})
        dim = bound["dim"]
        if dim is None:  # torch's implicit choice for F.softmax without dim
            dim = 0 if x.ndim in (0, 1, 3) else 1
        dim = dim % x.ndim
        if kwargs.get("dtype") is not None:
            x = x.to(kwargs["dtype"])
        if dim == 0:
            raise ValueError(
                "deeplift: softmax over the batch dim mixes inputs and references; "
                "DeepLift needs it over features"
            )
        _check_paired(x, "softmax")
        return _Softmax.apply(x, dim, eps)

    return handle


# Max pooling rule ---------------------------------------------------------------------


def _unpool(values: torch.Tensor, indices: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Route pooled values back to their argmax positions, summing repeats: ``[..., *shape]``."""
    spatial = indices.ndim - 2
    flat_in = shape[-spatial:].numel()
    lead = values.shape[: values.ndim - spatial]
    out = values.new_zeros(*lead, flat_in)
    # reshape, not flatten: the batched backward (is_grads_batched) has rules for reshape only.
    index = indices.reshape(*indices.shape[:-spatial], -1).expand(*lead, -1)
    out = out.scatter_add(-1, index, values.reshape(*lead, -1))
    return out.reshape(*lead, *shape[-spatial:])


class _MaxPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, pool, eps):  # type: ignore[override]
        y, indices = pool(x)
        ctx.indices, ctx.shape = indices, x.shape
        xa, xr = halves(x)
        ctx.flat, ctx.inverse = _split(torch.cat([xa - xr] * 2), torch.ones_like(x), eps)
        ya, yr = halves(y)
        top = torch.maximum(ya, yr)
        ctx.dy = torch.cat([top - yr, ya - top])
        return y

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        plain = _unpool(grad, ctx.indices, ctx.shape)
        routed = _unpool(grad * ctx.dy, ctx.indices, ctx.shape)
        ra, rr = routed.chunk(2)
        both = torch.cat([ra + rr] * 2)
        return plain * ctx.flat + both * ctx.inverse, None, None


_POOL = _sig(
    "input",
    "kernel_size",
    stride=None,
    padding=0,
    dilation=1,
    ceil_mode=False,
    return_indices=False,
)


def _pool_handler(eps: float) -> Handler:
    def handle(func: Callable[..., Any], name: str, args: tuple, kwargs: dict) -> Any:
        bound = bind(_POOL, args, kwargs)
        x = bound["input"]
        if not _is_activation(x):
            return func(*args, **kwargs)
        spatial = int(name[len("max_pool")])
        if x.ndim != spatial + 2:
            raise ValueError(
                f"deeplift: {name} on an input of shape {list(x.shape)}; the rule needs a "
                f"batched input [2N, C, {spatial} spatial dims]"
            )
        _check_paired(x, name)
        pool_fn = getattr(torch.nn.functional, f"max_pool{spatial}d")
        stride = bound["stride"] or bound["kernel_size"]  # None and [] mean the kernel size

        def pool(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return pool_fn(
                t,
                bound["kernel_size"],
                stride,
                bound["padding"],
                bound["dilation"],
                ceil_mode=bound["ceil_mode"],
                return_indices=True,
            )

        y = _MaxPool.apply(x, pool, eps)
        if bound["return_indices"] or name.endswith("with_indices"):
            return y, pool(x.detach())[1]
        return y

    return handle


# Refusals -----------------------------------------------------------------------------


def _is_activation(t: object) -> bool:
    return isinstance(t, torch.Tensor) and t.requires_grad


def _check_paired(x: torch.Tensor, name: str) -> None:
    if x.ndim == 0 or x.shape[0] % 2:
        raise ValueError(
            f"deeplift: {name} saw a tensor of shape {list(x.shape)}; DeepLift pairs each "
            "row with its reference along the first dim (inputs then references), which "
            "needs an even number of rows: keep the batch dim first"
        )


def _handlers(eps: float) -> dict[str, Handler]:
    handlers: dict[str, Handler] = {}
    for name in (*UNSUPPORTED, *PRODUCTS, *QUOTIENTS, "batch_norm"):
        refuse = refusal(name)
        for form in (name, f"{name}_", f"__{name}__", f"__i{name}__", f"__r{name}__"):
            handlers[form] = refuse
    handlers["__rtruediv__"] = handlers["__rdiv__"] = refusal("div")
    rescale = _rescale_handler(eps)
    for name in _ELEMENTWISE:
        handlers[name] = handlers[f"{name}_"] = rescale
    handlers["softmax"] = handlers["_softmax"] = _softmax_handler(eps)
    pool = _pool_handler(eps)
    for d in (1, 2, 3):
        handlers[f"max_pool{d}d"] = handlers[f"max_pool{d}d_with_indices"] = pool
    return handlers


@contextlib.contextmanager
def deeplift_rules(module: torch.nn.Module | None = None, eps: float = EPS) -> Iterator[None]:
    """Within the block, forwards over paired batches (:func:`paired`) record DeepLift's rules.

    Pass ``module`` to freeze its parameters for the block (restored on exit, also after
    an error), so that only activations count as inputs of products, and to refuse
    TorchScript models. Raises ``ValueError`` naming a nonlinearity that has no rule.

    Examples
    --------
    >>> from algebra.kernels.pairs import paired
    >>> x = torch.tensor([[2.0]], requires_grad=True)
    >>> with deeplift_rules():
    ...     y = torch.sigmoid(paired(x, 0.0))
    >>> g = torch.autograd.grad(y.sum(), x)[0]   # (sigmoid(2) - sigmoid(0)) / 2
    >>> round(float(g), 4), round((float(torch.sigmoid(torch.tensor(2.0))) - 0.5) / 2, 4)
    (0.1904, 0.1904)
    >>> with deeplift_rules():
    ...     torch.nn.functional.gelu(paired(x, 0.0))
    Traceback (most recent call last):
    ValueError: deeplift: the model applies gelu, which has no DeepLift rule; ...
    """
    refuse_scripted(module, "deeplift")
    flags = {} if module is None else {p: p.requires_grad for p in module.parameters()}
    try:
        for p in flags:
            p.requires_grad_(False)
        with RuleMode(_handlers(eps)):
            yield
    finally:
        for p, flag in flags.items():
            p.requires_grad_(flag)
