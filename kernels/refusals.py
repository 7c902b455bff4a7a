"""What DeepLift's rules refuse: nonlinear operations on activations that have no rule.

A map that silently used plain gradients through these would not be DeepLift's. Names
are matched in every form (``gelu``, ``gelu_``, ``__pow__``, ``__rpow__``, ATen's).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .rules import Handler

COVERED = ("relu", "elu", "leaky_relu", "sigmoid", "tanh", "softplus", "softmax", "max_pool")

# Nonlinear functions with no DeepLift rule here (in-place and dunder forms included).
UNSUPPORTED = frozenset(
    """gelu silu mish hardswish hardsigmoid hardtanh relu6 selu celu glu logsigmoid
    log_sigmoid softsign tanhshrink softshrink hardshrink threshold prelu rrelu
    log_softmax softmin normalize layer_norm group_norm instance_norm
    local_response_norm rms_norm scaled_dot_product_attention
    multi_head_attention_forward adaptive_max_pool1d adaptive_max_pool2d
    adaptive_max_pool3d fractional_max_pool2d fractional_max_pool3d lp_pool1d lp_pool2d
    lp_pool3d exp exp2 expm1 log log1p log2 log10 sqrt rsqrt square reciprocal sin cos
    tan asin acos atan sinh cosh erf erfc erfinv abs absolute sign sgn clamp clip
    clamp_min clamp_max maximum minimum fmax fmin max min amax amin logsumexp norm sort
    topk cummax cummin atan2 hypot pow float_power lstm gru rnn_tanh rnn_relu lstm_cell
    gru_cell rnn_tanh_cell rnn_relu_cell native_layer_norm native_group_norm
    _log_softmax _native_batch_norm_legit _scaled_dot_product_efficient_attention
    _scaled_dot_product_flash_attention _scaled_dot_product_flash_attention_for_cpu""".split()  # noqa: SIM905
)
# Products: nonlinear when two or more of their tensors are activations.
PRODUCTS = frozenset(
    """mul multiply matmul mm bmm einsum bilinear addcmul outer dot inner kron baddbmm
    addbmm addmm cross""".split()  # noqa: SIM905
)
# Quotients: nonlinear when the divisor is an activation.
QUOTIENTS = frozenset(
    """div divide true_divide floor_divide truediv floordiv""".split()  # noqa: SIM905
)


def _tensors(values: Any) -> list[torch.Tensor]:
    if isinstance(values, torch.Tensor):
        return [values]
    if isinstance(values, (list, tuple)):
        return [t for v in values for t in _tensors(v)]
    return []


def refusal(name: str) -> Handler:
    """A rule-mode handler that raises for ``name`` applied nonlinearly to an activation.

    An activation is a tensor that requires grad (parameters are frozen by the caller).
    Products refuse two activations, quotients an activation as divisor (or a number
    over an activation), ``batch_norm`` its training mode, the rest any activation.

    Examples
    --------
    >>> refuse = refusal("mul")
    >>> a = torch.ones(2, requires_grad=True)
    >>> refuse(torch.mul, "mul", (a, torch.ones(2)), {})
    tensor([1., 1.], grad_fn=<MulBackward0>)
    >>> refuse(torch.mul, "mul", (a, a), {})
    Traceback (most recent call last):
    ValueError: deeplift: the model applies mul of two activations, which has no DeepLift rule; ...
    """

    def refuse(func: Callable[..., Any], called: str, args: tuple, kwargs: dict) -> Any:
        tensors = _tensors(list(args) + list(kwargs.values()))
        active = [t for t in tensors if t.requires_grad]
        if name in PRODUCTS:
            bad = len(active) >= 2
        elif name in QUOTIENTS and not called.startswith("__r"):
            bad = len(tensors) >= 2 and tensors[1].requires_grad  # activation as divisor
        elif name == "batch_norm":
            training = kwargs.get("training", args[5] if len(args) > 5 else False)
            bad = bool(training) and bool(active)
        else:  # a nonlinear function, or a number divided by an activation
            bad = bool(active)
        if not bad:
            return func(*args, **kwargs)
        if name == "batch_norm":
            what = "batch_norm in training mode (it mixes inputs and references)"
        elif name in PRODUCTS or (name in QUOTIENTS and not called.startswith("__r")):
            what = f"{name} of two activations"
        else:
            what = name if name not in QUOTIENTS else "a division by an activation"
        raise ValueError(
            f"deeplift: the model applies {what}, which has no DeepLift rule; DeepLift "
            f"covers {', '.join(COVERED)} and layers linear in their input (linear, "
            "convolution, average pooling, eval-mode batch norm, sums, reshapes). "
            "Use integrated_gradients or gradient_shap for this model"
        )

    return refuse
