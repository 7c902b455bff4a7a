"""The optimizer: attribution nodes become frozen kernel jobs through named stages.

logical (the expressions as written) -> :func:`simplify` (common sub-expressions merged;
one gradient request per target, layer and point set) -> :func:`physical` (requests grouped
by model, inputs and the points the model is evaluated at) -> :func:`fuse` (one forward per
point set, one batched backward over its targets and layers: a frozen
:class:`~algebra.kernels.plan.Job`) -> chunked (cut at run time by the kernels under
``ia.options.memory_budget``, :func:`algebra.kernels.sizing.passes`). Each rule has a flag
in ``ia.options.optimizer``; :func:`optimize` runs the stages and keeps every stage's
output, which ``explain()`` prints. No torch here.
"""

from .fuse import fuse
from .physical import physical
from .plan import Plan, optimize
from .rules import flags
from .simplify import simplify

__all__ = ["Plan", "flags", "fuse", "optimize", "physical", "simplify"]
