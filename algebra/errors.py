"""Error helpers: messages that name the argument, what was expected, and close matches."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """Return a " Did you mean ...?" suffix for ``value`` among ``choices``, or "".

    Examples
    --------
    >>> did_you_mean("saliancy", ["saliency", "input_x_gradient"])
    " Did you mean 'saliency'?"
    >>> did_you_mean("zzz", ["saliency"])
    ''
    """
    matches = difflib.get_close_matches(str(value), list(choices), n=3, cutoff=0.6)
    if not matches:
        return ""
    return " Did you mean " + " or ".join(repr(m) for m in matches) + "?"


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
