"""Error helpers: messages that name the argument, what was expected, and close matches."""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from typing import Any


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """Return a " Did you mean ...?" suffix for ``value`` among ``choices``, or "".

    Examples
    --------
    >>> did_you_mean("saliancy", ["saliency", "input_x_gradient"])
    " Did you mean 'saliency'?"
    >>> did_you_mean("prediction", ["pred", "label"])
    " Did you mean 'pred'?"
    >>> did_you_mean("zzz", ["saliency"])
    ''
    """
    choices = list(choices)
    text = str(value).lower()
    matches = difflib.get_close_matches(str(value), choices, n=3, cutoff=0.6)
    # Abbreviations and extensions ('prediction' for 'pred') are near misses too.
    matches += [
        c
        for c in choices
        if text
        and c not in matches
        and c
        and (text.startswith(c.lower()) or c.lower().startswith(text))
    ]
    matches = matches[:3]
    if not matches:
        return ""
    return " Did you mean " + " or ".join(repr(m) for m in matches) + "?"


def positive_integer(value: Any, argument: str) -> int:
    """Validate an integer >= 1 (NumPy and torch integers accepted).

    Examples
    --------
    >>> positive_integer(3, "steps")
    3
    >>> positive_integer(0, "k")
    Traceback (most recent call last):
    ValueError: k: expected an integer >= 1; got 0
    """
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"{argument}: expected an integer >= 1; got {value!r}")
    number = int(value.__index__())
    if number < 1:
        raise ValueError(f"{argument}: expected an integer >= 1; got {shown_int(number)}")
    return number


def shown_int(number: int) -> str:
    """An integer as messages show it: its digits, or its size when it has too many.

    ``str()`` of an integer of thousands of digits raises; a size is what the reader needs.

    Examples
    --------
    >>> shown_int(42), shown_int(10**5000), shown_int(-(10**30))
    ('42', 'about 10^5000', 'about -10^30')
    """
    if abs(number) < 10**12:
        return str(number)
    digits = int(abs(number).bit_length() * math.log10(2))
    return f"about {'-' if number < 0 else ''}10^{digits}"


def unknown_name(argument: str, value: str, choices: Iterable[str]) -> ValueError:
    """Build the ``ValueError`` for a name that is not among ``choices``.

    Examples
    --------
    >>> print(unknown_name("method", "gauss", ["gausslegendre", "riemann_left"]))
    method: unknown value 'gauss'; expected one of 'gausslegendre', 'riemann_left'. Did you mean 'gausslegendre'?
    """
    choices = list(choices)
    shown = ", ".join(repr(c) for c in choices[:12]) + (", ..." if len(choices) > 12 else "")
    return ValueError(
        f"{argument}: unknown value {value!r}; expected one of {shown}."
        + did_you_mean(value, choices)
    )
