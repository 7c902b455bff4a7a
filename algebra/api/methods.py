"""Attribution methods by name: lookup with close matches, and parameter checks.

The query language and ``identity``/``antijoin`` name methods as text; these helpers turn a
name into the query's bound method and refuse parameters it does not take.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from ..errors import did_you_mean
from ..ir.attribution import method as lookup_method
from .expr import Expr


def renamed(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters as given to ``identity``/``antijoin``, whose own ``method`` names the
    attribution method: integrated gradients' rule comes as ``integration``.

    Examples
    --------
    >>> renamed({"integration": "riemann_left", "steps": 8})
    {'steps': 8, 'method': 'riemann_left'}
    """
    params = dict(params)
    if "integration" in params:
        params["method"] = params.pop("integration")
    return params


def method_of(query: Any, name: Any) -> Callable[..., Expr]:
    """The query's attribution method called ``name``, with close matches when unknown.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
    >>> method_of(q, "saliency").__name__
    'saliency'
    >>> method_of(q, "saliancy")
    Traceback (most recent call last):
    ValueError: method: unknown value 'saliancy'; expected one of 'saliency', 'input_x_gradient', 'integrated_gradients', 'grad_cam', 'guided_backprop', 'deconvolution', 'deeplift', 'deeplift_shap', 'gradient_shap', 'expected_gradients', 'grad_cam_pp', 'xgrad_cam', .... Did you mean 'saliency'?
    """
    if not isinstance(name, str):
        raise TypeError(f"method: expected a method name (str); got {type(name).__name__}")
    lookup_method(name)
    return getattr(query, name)


def check_params(name: str, bound: Callable[..., Any], params: dict[str, Any]) -> None:
    """Refuse parameters the method does not take, naming close matches.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
    >>> check_params("integrated_gradients", q.integrated_gradients, {"step": 8})
    Traceback (most recent call last):
    TypeError: integrated_gradients: unknown parameter 'step'; it takes steps, method, baseline, multiply_by_inputs. Did you mean 'steps'?
    """
    accepted = [p for p in inspect.signature(bound).parameters if p != "target"]
    for key in params:
        if key not in accepted:
            raise TypeError(
                f"{name}: unknown parameter {key!r}; it takes {', '.join(accepted)}."
                + did_you_mean(key, accepted)
            )
