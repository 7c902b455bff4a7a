"""Join and anti-join: comparing attributions across two inputs or two models.

* :class:`Join` combines two attributions of the same shape elementwise (``mean`` is the
  paper's definition: what matters to both).
* :class:`AntiJoin` pairs two inputs through one model, each attributed with the other as
  its baseline, along a ``side`` dim (``left``, ``right``).
* :class:`Disagreement` is the anti-join of one input through two models: the
  attribution of ``f_c - g_c``, computed on a model whose outputs are that difference.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import unknown_name
from .attribution import Attribution
from .model import ModelInfo
from .node import Node
from .views import source_of

HOWS = ("mean", "min", "product")


@dataclass(frozen=True, eq=False)
class Join(Node):
    """``how`` in ``mean``, ``min``, ``product`` of two attributions of the same shape."""

    left: Node
    right: Node
    how: str
    op = "join"

    def validate(self) -> None:
        if self.how not in HOWS:
            raise unknown_name("how", self.how, HOWS)
        a, b = source_of(self.left), source_of(self.right)
        if a.n != b.n:
            raise ValueError(
                f"join: the two sides have {a.n} and {b.n} samples; a join pairs samples one to one"
            )


@dataclass(frozen=True, eq=False)
class AntiJoin(Node):
    """The pair (phi(x; x'), phi(x'; x)): ``left`` and ``right`` already have swapped baselines."""

    left: Attribution
    right: Attribution
    op = "antijoin"


@dataclass(frozen=True, eq=False)
class Disagreement(Node):
    """The attribution of ``f_c - g_c``: ``part`` runs on the difference model."""

    part: Attribution
    left_model: ModelInfo
    right_model: ModelInfo
    op = "disagreement"
