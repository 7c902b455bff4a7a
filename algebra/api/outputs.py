"""``ia.model(module, output=..., position=...)``: which scores of what the forward returns
are explained, checked when a query is built.

The spec (:class:`~algebra.kernels.outputs.OutputSpec`) is part of the model's identity.
A method on a model with an ``output=`` or ``position=``, or with a target that names a
position (``ia.at``), runs the model once on the first sample (a probe, remembered) so an
``output=`` that finds nothing, a position outside the sequence or a class outside the
vocabulary fails when the expression is built, not when it is computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..ir.model import ModelInfo
from ..ir.node import Node, Ref
from ..ir.targets import Target
from ..ir.views import source_of
from ..kernels.capture import hookable
from ..kernels.outputs import OutputSpec
from ..kernels.probes import output_shape


def output_spec(output: Any, position: Any, module: torch.nn.Module) -> OutputSpec:
    """The spec of ``output=`` and ``position=``, their types checked.

    Examples
    --------
    >>> output_spec("logits", -1, torch.nn.Linear(2, 2)).key
    "output='logits'|position=-1"
    >>> output_spec(1.0, None, torch.nn.Linear(2, 2))
    Traceback (most recent call last):
    TypeError: output: expected a field or key name (str), a tuple index (int) or a callable; got 1.0
    """
    if not (output is None or isinstance(output, str) or callable(output)) and (
        isinstance(output, bool) or not isinstance(output, int)
    ):
        raise TypeError(
            "output: expected a field or key name (str), a tuple index (int) or a callable; "
            f"got {output!r}"
        )
    if position is not None and (isinstance(position, bool) or not hasattr(position, "__index__")):
        raise TypeError(
            f"position: expected an int (negative counts from the end); got {position!r}"
        )
    spec = OutputSpec(output, None if position is None else int(position.__index__()))
    if not spec.default and not hookable(module):
        raise ValueError(
            "output: a TorchScript model cannot have its scores selected (TorchScript refuses "
            "forward hooks); return the scores from its forward"
        )
    return spec


def model_info(
    module: torch.nn.Module,
    name: str,
    classes: tuple[str, ...] | None,
    layers: tuple[str, ...],
    spec: OutputSpec,
) -> ModelInfo:
    """What the nodes know of a model; its token holds the output spec (the same module
    read two ways is two models).

    Examples
    --------
    >>> net = torch.nn.Linear(2, 3)
    >>> a = model_info(net, "lin", None, (), OutputSpec())
    >>> b = model_info(net, "lin", None, (), OutputSpec(position=-1))
    >>> a == b, a.scores, b.scores.position
    (False, None, -1)
    """
    token = f"model:{id(module)}:{name}:{classes}"
    output = None if spec.default else Ref(spec, spec.key)
    if output is not None:
        token += f":{spec.key}"
    return ModelInfo(Ref(module, token), name, classes, layers, output=output)


def without_position(info: ModelInfo) -> ModelInfo:
    """The same model read without a position (its whole sequence of scores).

    Examples
    --------
    >>> info = model_info(torch.nn.Linear(2, 3), "lm", None, (), OutputSpec("logits", -1))
    >>> without_position(info).scores
    OutputSpec(select='logits', position=None, flatten=False)
    """
    spec = info.scores or OutputSpec()
    plain = OutputSpec(spec.select)
    return model_info(info.torch_module, info.name, info.classes, info.layer_names, plain)


def first_sample(value: Any) -> torch.Tensor | None:
    """The inputs to probe with (a tensor), or ``None`` for inputs read lazily.

    Examples
    --------
    >>> first_sample(torch.ones(3, 2)).shape, first_sample(object())
    (torch.Size([3, 2]), None)
    """
    return value if isinstance(value, torch.Tensor) else None


def checked_target(view: Node, target: Target) -> Target:
    """``target`` checked against the view's model's scores: a position named by the
    target (``ia.at``) resolved on the sequence, the model's ``output=`` and ``position=``
    checked (a one-sample probe; nothing runs for a model with neither).

    Examples
    --------
    >>> import algebra as ia
    >>> class LM(torch.nn.Module):
    ...     def forward(self, x):
    ...         return {"logits": torch.stack([x, 2 * x], -1)}     # [N, L, 2]
    >>> q = ia.model(LM()).on(torch.rand(2, 5))
    >>> checked_target(q.node, ia.at(-1, 1)).value
    (4, 1, 5, 2)
    >>> checked_target(q.node, ia.at(5, 1))
    Traceback (most recent call last):
    ValueError: position: 5 is outside the model's sequence of length 5 (valid -5..4)
    """
    source = source_of(view)
    info = source.model
    spec = info.scores or OutputSpec()
    if spec.default and target.kind != "at":
        return target
    x = first_sample(source.inputs.value)
    if x is None and target.kind == "at":
        raise ValueError(
            f"target: {target.describe()} is counted on the model's sequence, from a probe of "
            "the first sample, but these inputs are read lazily; give the model a position "
            "(ia.model(module, position=...)) instead"
        )
    if x is None:  # lazy inputs: checked when computed
        return target
    shape = output_shape(info.torch_module, x, spec.select)
    if target.kind == "at":
        return _at(target, spec, shape, info.num_classes)
    if target.kind == "generated":
        return target
    if len(shape) == 3 and spec.position is None:
        raise ValueError(
            f"model: its scores are a sequence {list(shape)} = [N, L, V]; choose a position "
            "with ia.model(module, position=-1) (next-token scores), or name a position in "
            "the target: ia.at(position, class)"
        )
    if spec.position is not None:
        if len(shape) != 3:
            raise ValueError(
                f"position: the model's scores have shape {list(shape)}, with no sequence to "
                "take a position of; position= reads sequence scores [N, L, V]"
            )
        _position(spec.position, shape[1])
    return target


def _position(position: int, length: int) -> int:
    if not -length <= position < length:
        raise ValueError(
            f"position: {position} is outside the model's sequence of length {length} "
            f"(valid {-length}..{length - 1})"
        )
    return position % length


def _at(target: Target, spec: OutputSpec, shape: Sequence[int], named: int | None) -> Target:
    position, classes = target.value[0], target.value[1]  # type: ignore[index]
    if len(shape) != 3:
        raise ValueError(
            f"target: {target.describe()} names a position, but the model's scores have shape "
            f"{list(shape)}, not a sequence [N, L, V]"
        )
    if spec.position is not None:
        raise ValueError(
            f"target: {target.describe()} names a position, but the model reads position "
            f"{spec.position} of its scores already; build it without position= to name "
            "positions in targets"
        )
    length, vocabulary = shape[1], shape[2]
    if named is not None and named != vocabulary:
        raise ValueError(
            f"classes: {named} class names were given, but the model has {vocabulary} "
            "classes at each position"
        )
    for c in classes if isinstance(classes, tuple) else (classes,):
        if c >= vocabulary:
            raise ValueError(
                f"target: class {c} is out of range for the model's {vocabulary} classes at "
                f"each position (expected 0..{vocabulary - 1})"
            )
    return Target("at", (_position(position, length), classes, length, vocabulary))
