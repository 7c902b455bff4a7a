"""Labels of several inputs and token ids: one input's share of a packed attribution, the
dims of a layer over tokens, and the text of the tokens as a coordinate.

An attribution at packed inputs comes out of the kernels over the packed columns (a
``packed`` dim); :func:`input_frame` cuts one input's columns out of it and gives them
that input's shape and dims. A layer's activation over the tokens of token ids is labelled
``token, embedding``; with the tokens' text (``Model.on(..., tokens=...)``), a
``token_text`` coordinate over ``(sample, token)`` names them.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from ..ir.inputs import InputLayout, InputPart, layout_of, token_dims
from ..ir.views import Source, default_dims
from ..kernels.frame import Frame


def input_frame(node: InputPart, frame: Frame) -> Frame:
    """The frame of one input: its columns of the packed frame, in its shape and dims.

    Coordinates over the packed columns (a perturbation's ``player`` map) are cut alike;
    ``attrs["input"]`` names the input.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> class Two(torch.nn.Module):
    ...     def forward(self, a, b):
    ...         return a.flatten(1) @ torch.ones(4, 2) + b @ torch.ones(3, 2)
    >>> q = ia.model(Two().eval()).on((torch.rand(2, 2, 2), torch.rand(2, 3)), dims=(("y", "x"), None))
    >>> part = q.saliency(0)[0].node
    >>> packed = Frame(torch.arange(16.0).reshape(2, 8), ("sample", "packed"),
    ...                features=("packed",))
    >>> out = input_frame(part, packed)
    >>> out.dims, out.data[1].tolist(), out.attrs
    (('sample', 'y', 'x'), [[8.0, 9.0], [10.0, 11.0]], {'input': 'a'})
    """
    slot = node.slot
    packed = frame.dims[-1]
    lead = frame.data.shape[:-1]
    data = frame.data[..., slot.start : slot.stop].reshape(*lead, *slot.shape)
    dims = (*frame.dims[:-1], *slot.dims)
    coords: dict[str, Any] = {}
    for name, (cdims, values) in frame.coords.items():
        if packed not in cdims:
            coords[name] = (cdims, values)
        elif cdims[-1] == packed:  # the player map: cut and shaped like the input
            cut = values[..., slot.start : slot.stop]
            coords[name] = ((*cdims[:-1], *slot.dims), cut.reshape(*cut.shape[:-1], *slot.shape))
    layout = layout_of(node)
    if "sample" in dims:
        coords.update(token_text(layout, slot.dims))
    attrs = {**frame.attrs, "input": node.name}
    features = tuple(d for d in frame.features if d != packed) + slot.dims
    return replace(frame, data=data, dims=dims, coords=coords, features=features, attrs=attrs)


def layer_dims(source: Source, shape: tuple[int, ...]) -> tuple[str, ...]:
    """Dims of a layer's activation of per-sample ``shape``: ``token, embedding`` over the
    tokens of token ids, else the defaults.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> net = torch.nn.Sequential(torch.nn.Embedding(9, 4), torch.nn.Flatten(),
    ...                           torch.nn.Linear(12, 2))
    >>> source = ia.model(net).on(torch.tensor([[1, 2, 3]])).node
    >>> layer_dims(source, (3, 4)), layer_dims(source, (12,))
    (('token', 'embedding'), ('feature',))
    """
    return token_dims(source.model.inputs, shape) or default_dims(len(shape) + 1)


def token_text(layout: InputLayout | None, dims: tuple[str, ...]) -> dict[str, Any]:
    """The ``token_text`` coordinate over ``(sample, token)`` when ``dims`` run over the
    tokens and their text was given, else nothing.

    Examples
    --------
    >>> from algebra.ir.inputs import InputSlot
    >>> slot = InputSlot("ids", (2,), ("token",), 0, 2, True)
    >>> layout = InputLayout("single", (slot,), (), (), False, (("a", "b"), ("c", "d")), (), "k")
    >>> token_text(layout, ("token", "embedding"))["token_text"][1].tolist()
    [['a', 'b'], ['c', 'd']]
    """
    if layout is None or layout.tokens is None or "token" not in dims:
        return {}
    return {"token_text": (("sample", "token"), np.asarray(layout.tokens, dtype=object))}
