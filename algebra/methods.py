"""The attribution methods: their names, parameters and validation (no computation here)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import positive_integer, unknown_name
from .kernels.plan import INTEGRATION_RULES


@dataclass(frozen=True)
class Method:
    """An attribution method: how its gradient is used and which parameters it takes.

    ``times_input`` multiplies the (integrated) gradient by the input or activation,
    ``path`` integrates along a path from a baseline (integrated gradients).
    """

    name: str
    times_input: bool
    path: bool
    summary: str


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("saliency", False, False, "gradient of the target score"),
        Method("input_x_gradient", True, False, "gradient times input"),
        Method(
            "integrated_gradients", True, True, "path-integrated gradient times (input - baseline)"
        ),
    )
}


def method(name: str) -> Method:
    """Look up a method by name; unknown names get close matches.

    Examples
    --------
    >>> method("saliency").times_input
    False
    >>> method("integrated_gradient")
    Traceback (most recent call last):
    ValueError: method: unknown value 'integrated_gradient'; expected one of 'saliency', 'input_x_gradient', 'integrated_gradients'. Did you mean 'integrated_gradients' or 'input_x_gradient'?
    """
    if name not in METHODS:
        raise unknown_name("method", name, METHODS)
    return METHODS[name]


def check_steps(steps: Any, rule: str) -> int:
    """Validate the number of integration steps.

    Examples
    --------
    >>> check_steps(0, "gausslegendre")
    Traceback (most recent call last):
    ValueError: steps: expected an integer >= 1; got 0
    """
    steps = positive_integer(steps, "steps")
    if rule == "riemann_trapezoid" and steps < 2:
        raise ValueError("steps: riemann_trapezoid needs at least 2 steps (both end points)")
    return steps


def check_rule(rule: Any) -> str:
    """Validate an integration rule name (the ``method`` of integrated gradients).

    Examples
    --------
    >>> check_rule("riemann_middle")
    'riemann_middle'
    """
    if not isinstance(rule, str) or rule not in INTEGRATION_RULES:
        raise unknown_name("method", str(rule), INTEGRATION_RULES)
    return rule


def check_flag(value: Any, argument: str) -> bool:
    """Validate a boolean parameter.

    Examples
    --------
    >>> check_flag(1, "abs")
    Traceback (most recent call last):
    TypeError: abs: expected True or False; got 1
    """
    if not isinstance(value, bool):
        raise TypeError(f"{argument}: expected True or False; got {value!r}")
    return value
