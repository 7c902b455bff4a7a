"""The demo's four studies, by name. Each module's ``run(ctx, out)`` writes its figures into
``out`` and returns a :class:`~algebra.demo.report.Study`; ``STEPS`` is how many times it
calls ``ctx.step`` (the length of its progress bar)."""

from __future__ import annotations

from types import ModuleType

from . import adversarial, inconsistency, neuroinspect, poisoning

STUDIES: dict[str, ModuleType] = {
    "adversarial": adversarial,
    "inconsistency": inconsistency,
    "poisoning": poisoning,
    "neuroinspect": neuroinspect,
}
