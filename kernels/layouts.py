"""How the gradient family's point sets are cut into chunks, and the forwards they run first.

The runners (:mod:`~algebra.kernels.runs`) cut their passes this way and
:func:`~algebra.kernels.sizing.passes` describes them with the same functions, so
``explain()`` and the executor agree: DeepLift's pairs stay in one chunk (the two halves
of a pair meet in every nonlinearity), the other sets run in rectangles of points x
samples (:func:`~algebra.kernels.chunks.path_chunks`).
"""

from __future__ import annotations

from .chunks import count_chunks
from .plan import Group


def chunk_layout(group: Group, rows: int, per_chunk: int) -> tuple[int, int]:
    """``(chunks, rows per chunk)`` of a group of ``rows`` rows, ``per_chunk`` at most.

    Examples
    --------
    >>> from algebra.kernels.plan import PathSpec, Points
    >>> from algebra.kernels.point_specs import PairedSpec
    >>> paired = Group(Points("paired", PathSpec(1, "", 0.0, "0.0"), spec=PairedSpec(3)))
    >>> chunk_layout(paired, 4 * 6, 10)    # 12 pairs, 5 pairs (10 rows) per chunk
    (3, 10)
    >>> chunk_layout(Group(Points("path", PathSpec(8, "gausslegendre", 0.0, "0.0"))), 32, 10)
    (4, 8)
    """
    steps = group.points.steps
    n = rows // steps
    if group.points.kind == "paired":
        pairs = n * group.points.spec.pairs_per_sample
        per_pairs = max(1, per_chunk // 2)
        return -(-pairs // per_pairs), 2 * min(per_pairs, pairs)
    if steps == 1:
        return -(-rows // per_chunk), per_chunk
    chunks = count_chunks(steps, n, per_chunk)
    return chunks, per_chunk if per_chunk < n else min(rows, per_chunk // n * n)


def extra_rows(group: Group, n: int) -> tuple[tuple[str, int], ...]:
    """The gradient-free forwards a group runs before its points: ``(what, rows)`` each.

    GradientSHAP evaluates its ``B`` baselines (their scores and layers), and with noise
    the ``S x N`` noisy inputs (the draws' ends).

    Examples
    --------
    >>> import torch
    >>> from algebra.kernels.plan import Points
    >>> from algebra.kernels.point_specs import ShapSpec
    >>> spec = ShapSpec(torch.zeros(5, 3), "b", samples=4, stdev=0.1, seed=0)
    >>> extra_rows(Group(Points("shap", spec=spec)), 2)
    (('baselines', 5), ('noisy inputs', 8))
    """
    if group.points.kind != "shap":
        return ()
    spec = group.points.spec
    out: tuple[tuple[str, int], ...] = (("baselines", int(spec.baselines.shape[0])),)
    if spec.stdev > 0:
        out += (("noisy inputs", spec.samples * n),)
    return out
