"""The model of a disagreement ``f - g``, for the model-level anti-join."""

from __future__ import annotations

from ..ir.model import ModelInfo
from ..ir.node import Ref
from ..kernels.difference import Difference
from ..kernels.outputs import Scored


def difference_of(left: ModelInfo, right: ModelInfo) -> ModelInfo:
    """What the nodes know of a model whose outputs are ``left(x) - right(x)``.

    Its ``reference`` is the left model, whose outputs resolve ``pred`` and ``topk``; its
    token derives from the two models', so building it twice gives equal expressions.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> f, g = ia.model(torch.nn.Linear(2, 3), name="f"), ia.model(torch.nn.Linear(2, 3), name="g")
    >>> d = difference_of(f.info, g.info)
    >>> d.name, d == difference_of(f.info, g.info), d.layer_names
    ('f - g', True, ())
    """
    if left.classes is not None and right.classes is not None and left.classes != right.classes:
        raise ValueError(
            "models: the two models name their classes differently; a disagreement "
            "compares the same classes"
        )
    module = Difference(
        Scored(left.torch_module, left.scores), Scored(right.torch_module, right.scores)
    )
    return ModelInfo(
        Ref(module, f"model:difference:{left.token}:{right.token}"),
        f"{left.name} - {right.name}",
        left.classes or right.classes,
        (),  # layers of two models are not one model's layers
        reference=left,
        parts=(left, right),
    )
