"""How a layer's tensor is named: the layer's name with its options in brackets.

``relu[call=1]`` (one call of a module called more than once), ``lstm[output=0]`` (an
element of a tuple output), ``fc[input]`` (the layer's input). Plans, results and the query
language name a selected layer this way; ``kernels.layer_calls.LayerSite`` reads it back.
"""

from __future__ import annotations

from typing import Any


def check_layer_options(call: Any, output: Any, input: Any) -> None:
    """Validate a layer's ``call``, ``output`` and ``input`` options (their types; their
    ranges need the model, :mod:`algebra.api.layer_options` checks them).

    Examples
    --------
    >>> check_layer_options(1, None, False)
    >>> check_layer_options("last", None, False)
    Traceback (most recent call last):
    ValueError: call: expected a call's index (an int >= 0) or 'all'; got 'last'
    """
    if call is not None and call != "all" and (_not_int(call) or call < 0):
        raise ValueError(f"call: expected a call's index (an int >= 0) or 'all'; got {call!r}")
    if output is not None and not isinstance(output, str) and (_not_int(output) or output < 0):
        raise ValueError(
            f"output: expected an element's index (an int >= 0) or a key (str); got {output!r}"
        )
    if not isinstance(input, bool):
        raise TypeError(f"input: expected True or False; got {input!r}")
    if input and output is not None:
        raise ValueError(
            "output: picks an element of the layer's output, but input=True attributes its "
            "input; give one of them"
        )


def _not_int(value: Any) -> bool:
    return isinstance(value, bool) or not isinstance(value, int)


def layer_key(
    name: str, call: int | str | None = None, output: int | str | None = None, input: bool = False
) -> str:
    """A layer's tensor as plans, results and the query language name it: the layer's
    name, with its options in brackets (read back by ``kernels.layer_calls.LayerSite``).

    Examples
    --------
    >>> layer_key("relu"), layer_key("lstm", call=1, output=0), layer_key("fc", input=True)
    ('relu', 'lstm[call=1, output=0]', 'fc[input]')
    """
    options = [] if call is None else [f"call={call}"]
    options += [] if output is None else [f"output={output!r}"]
    options += ["input"] if input else []
    return name + (f"[{', '.join(options)}]" if options else "")
