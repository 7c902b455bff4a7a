"""Integration steps of a path: the rules known, and how many steps each is built for.

Checked when an expression is built (a clear error naming ``steps``, never an overflow
however large the number) and again by the kernels before a path is laid out.
"""

from __future__ import annotations

import math
import operator
from typing import Any

# The integration rules of integrated gradients, in Captum's names.
INTEGRATION_RULES = (
    "riemann_left",
    "riemann_right",
    "riemann_middle",
    "riemann_trapezoid",
    "gausslegendre",
)

MAX_STEPS = {
    "gausslegendre": 10_000,
    "riemann_left": 1_000_000,
    "riemann_right": 1_000_000,
    "riemann_middle": 1_000_000,
    "riemann_trapezoid": 1_000_000,
}


def check_path_steps(steps: Any, rule: str) -> int:
    """Validate the number of integration steps for ``rule``: an integer in ``1..MAX_STEPS``.

    Raises ``ValueError`` naming ``steps`` (never ``OverflowError``, however large the
    number) or ``TypeError`` for a non-integer.

    Examples
    --------
    >>> check_path_steps(2000, "gausslegendre")
    2000
    >>> check_path_steps(10**100, "gausslegendre")
    Traceback (most recent call last):
    ValueError: steps: about 10^100 is more than the 10000 steps the gausslegendre rule is built for; use at most 10000 steps, or a riemann rule (up to 1000000 steps)
    """
    if isinstance(steps, bool) or not hasattr(steps, "__index__"):
        raise TypeError(f"steps: expected an integer; got {type(steps).__name__}")
    steps = operator.index(steps)
    if rule not in MAX_STEPS:
        raise ValueError(
            f"method: unknown integration rule {rule!r}; expected one of {INTEGRATION_RULES}"
        )
    if steps < 1:
        raise ValueError(f"steps: expected an integer >= 1; got {_shown(steps)}")
    cap = MAX_STEPS[rule]
    if steps > cap:
        other = (
            ""
            if rule != "gausslegendre"
            else (f", or a riemann rule (up to {MAX_STEPS['riemann_left']} steps)")
        )
        raise ValueError(
            f"steps: {_shown(steps)} is more than the {cap} steps the {rule} rule is built "
            f"for; use at most {cap} steps{other}"
        )
    return steps


def _shown(number: int) -> str:
    # str() of an int of thousands of digits raises; a size is what the reader needs.
    if abs(number) < 10**12:
        return str(number)
    return f"about {'-' if number < 0 else ''}10^{int(abs(number).bit_length() * math.log10(2))}"
