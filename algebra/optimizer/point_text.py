"""How ``explain()`` names the gradient family's point sets (torch-free)."""

from __future__ import annotations

from ..kernels.plan import Points


def _baseline(key: str) -> str:
    if key.startswith(("source-", "edit-")):
        return "other inputs" if key.startswith("source-") else "other (edited) inputs"
    return key if not key.startswith("tensor:") else "a tensor"


def family_points(points: Points, n: int) -> str | None:
    """The text of a point set of the gradient family, or ``None`` for the executor's own.

    ``n`` is the number of rows the point set is built on (samples, or noisy copies).

    Examples
    --------
    >>> from algebra.kernels.plan import PathSpec
    >>> from algebra.kernels.point_specs import PairedSpec
    >>> family_points(Points("inputs", rule="guided_backprop"), 4)
    'inputs under guided_backprop rules'
    >>> family_points(Points("paired", PathSpec(1, "", 0.0, "0.0"), spec=PairedSpec()), 4)
    'inputs paired with references 0.0 (2 x 4 rows), DeepLift rules'
    """
    spec = points.spec
    if points.kind == "inputs":
        return f"inputs under {points.rule} rules" if points.rule else None
    if points.kind == "paired":
        assert points.path is not None
        if spec.baselines:
            return (
                f"inputs paired with each of {spec.baselines} references "
                f"({spec.rows_per_sample} x {n} rows), DeepLift rules"
            )
        reference = _baseline(points.path.baseline_key)
        return f"inputs paired with references {reference} (2 x {n} rows), DeepLift rules"
    if points.kind == "shap":
        noise = f", noise {spec.stdev}" if spec.stdev else ""
        return (
            f"GradientSHAP points: {spec.samples} draws x {n} samples from "
            f"{int(spec.baselines.shape[0])} baselines{noise}"
        )
    if points.kind == "masks":
        return f"inputs masked by layer {points.layer!r}'s {spec.channels} channels"
    if points.kind == "conductance":
        return f"conductance path: {spec.steps + 1} points x {n} samples, {spec.rule}"
    return None
