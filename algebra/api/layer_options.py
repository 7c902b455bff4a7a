"""``q.layer(name, call=..., output=..., input=...)``: which tensor of a layer is attributed,
checked on the model when the query is built.

A module called more than once in a forward (weight sharing, a reused ``ReLU``) has one
output per call: ``call=k`` picks one (negative counts from the end), ``call="all"`` every
one (a ``call`` dim). A layer returning a tuple (``nn.LSTM``) needs ``output=i`` (or a key
of a dict output); ``input=True`` attributes the layer's first positional input instead of
its output (Captum's ``attribute_to_layer_input``). With any of them, the model runs once on
the first sample (a probe, remembered) to count the calls and check the element.
"""

from __future__ import annotations

from typing import Any

from ..ir.layer_keys import check_layer_options
from ..ir.node import Node
from ..ir.views import Layer, source_of
from ..kernels.layer_calls import element
from ..kernels.probes import layer_calls
from .outputs import first_sample


def selected_layer_node(node: Node, name: str, call: Any, output: Any, input: Any) -> Layer:
    """The :class:`Layer` selecting ``name``'s tensor, its options checked on the model.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> relu = torch.nn.ReLU()
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 3), relu, torch.nn.Linear(3, 3), relu)
    >>> q = ia.model(net).on(torch.rand(4, 2))
    >>> selected_layer_node(q.node, "1", -1, None, False).key
    '1[call=1]'
    >>> selected_layer_node(q.node, "1", 2, None, False)
    Traceback (most recent call last):
    ValueError: call: layer '1' is called 2 times in one forward pass; call=2 is beyond them (valid 0..1, or negative from the end)
    """
    if not isinstance(name, str):
        raise TypeError(f"name: expected a layer name (str); got {type(name).__name__}")
    plain = Layer(node, name)  # the name checked first, with close matches
    if call is None and output is None and input is False:
        return plain
    check_layer_options(
        call if not isinstance(call, int) or isinstance(call, bool) else abs(call),
        output if not isinstance(output, int) or isinstance(output, bool) else abs(output),
        input,
    )
    source = source_of(node)
    x = first_sample(source.inputs.value)
    if x is None:  # lazy inputs: checked when computed
        return Layer(node, name, call, output, input)
    calls = layer_calls(source.model.torch_module, x, name)
    if not calls:
        raise ValueError(
            f"layer: {name!r} is not called in the model's forward pass, so it has no "
            "activation to attribute"
        )
    call = _call(name, call, len(calls))
    chosen = calls if call == "all" else calls[call or 0 : (call or 0) + 1]
    output = _output(name, output, chosen[0][1])
    shapes = {tuple(_tensor(name, args, out, output, input).shape) for args, out in chosen}
    if len(shapes) > 1:
        raise ValueError(
            f"call: the calls of layer {name!r} give tensors of different shapes "
            f"{sorted(shapes)}; call='all' stacks calls of one shape: choose one with call=k"
        )
    return Layer(node, name, call, output, input)


def _call(name: str, call: Any, count: int) -> int | str | None:
    times = f"called {count} time{'s' * (count > 1)} in one forward pass"
    if call is None:
        if count > 1:
            raise ValueError(
                f"call: layer {name!r} is {times}; choose one with call=k (0..{count - 1}) "
                "or every one with call='all'"
            )
        return None
    if call == "all":
        return call
    if not -count <= call < count:
        raise ValueError(
            f"call: layer {name!r} is {times}; call={call} is beyond them (valid "
            f"0..{count - 1}, or negative from the end)"
        )
    return call % count


def _output(name: str, output: Any, out: Any) -> Any:
    if isinstance(output, int) and not isinstance(output, bool) and output < 0:
        if not isinstance(out, (tuple, list)) or output < -len(out):
            element(out, output, name)  # the error for what the layer returns
        return output % len(out)
    return output


def _tensor(name: str, args: tuple, out: Any, output: Any, input: bool) -> Any:
    if input:
        if not args or not hasattr(args[0], "shape"):
            raise ValueError(
                f"input: layer {name!r} is called without a tensor as its first positional "
                "input, so its input cannot be attributed"
            )
        return args[0]
    return element(out, output, name)
