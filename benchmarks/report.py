"""The printed table, the PASS/FAIL target lines and the JSON file."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

MIB = 1 << 20


@dataclass(frozen=True)
class Target:
    """A goal on one ratio of one workload, checked on one kind of device."""

    workload: str
    metric: str  # a ratio key of runner.run_workload's result
    label: str
    op: str  # ">=" or "<="
    threshold: float
    device: str  # "cpu" or "cuda"


TARGETS = (
    Target("mixed32", "speedup_vs_captum", "speedup vs Captum", ">=", 1.2, "cpu"),
    Target("mixed32", "ours_vs_floor", "ours/floor", "<=", 1.10, "cpu"),
    Target("mixed1", "speedup_vs_captum", "speedup vs Captum", ">=", 1.7, "cpu"),
    Target("ig1024", "ours_peak_over_budget", "ours peak/budget", "<=", 1.0, "cpu"),
    Target("mixed32", "speedup_vs_captum", "speedup vs Captum", ">=", 3.0, "cuda"),
    Target("ig1024", "ours_peak_over_budget", "ours peak/budget", "<=", 1.0, "cuda"),
)


def check_targets(workloads: list[dict[str, Any]], device_type: str) -> list[dict[str, Any]]:
    """Evaluate the targets of this device type on the workloads that ran.

    Parameters
    ----------
    workloads : list of dict
        Results of :func:`benchmarks.runner.run_workload`.
    device_type : str
        ``"cpu"`` or ``"cuda"``.

    Returns
    -------
    list of dict
        One per applicable target, with ``value`` and ``status`` (``PASS``, ``FAIL``, or
        ``MISSING`` when the ratio could not be computed, e.g. an implementation failed).
    """
    by_name = {w["name"]: w for w in workloads}
    checked = []
    for target in TARGETS:
        if target.device != device_type or target.workload not in by_name:
            continue
        value = by_name[target.workload][target.metric]
        if value is None:
            status = "MISSING"
        elif target.op == ">=":
            status = "PASS" if value >= target.threshold else "FAIL"
        else:
            status = "PASS" if value <= target.threshold else "FAIL"
        checked.append({**asdict(target), "value": value, "status": status})
    return checked


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_workload(result: dict[str, Any]) -> str:
    """The table of one workload: one row per implementation, then its ratios.

    Parameters
    ----------
    result : dict
        One result of :func:`benchmarks.runner.run_workload`.

    Returns
    -------
    str
    """
    head = (
        f"{result['name']}: {result['description']}  "
        f"[{result['attributions']} attribution maps per run]"
    )
    columns = f"{'impl':<7}{'median ms':>11}{'attr/s':>10}{'fwd':>6}{'fwd rows':>10}"
    columns += f"{'bwd':>6}{'peak MiB':>10}  note"
    lines = [head, columns]
    budget = result["memory_budget"]
    for name, r in result["impls"].items():
        median_ms = r["median_s"] * 1e3 if r["median_s"] is not None else None
        peak = r["peak_bytes"] / MIB if r["peak_bytes"] is not None else None
        note = r["error"] or ""
        if not note and budget is not None and r["within_budget"] is not None:
            note = f"{'within' if r['within_budget'] else 'OVER'} {budget / MIB:.0f} MiB budget"
        lines.append(
            f"{name:<7}{_fmt(median_ms, '.1f'):>11}{_fmt(r['attributions_per_s'], '.0f'):>10}"
            f"{_fmt(r['forward_calls'], 'd'):>6}{_fmt(r['forward_rows'], 'd'):>10}"
            f"{_fmt(r['backward_calls'], 'd'):>6}{_fmt(peak, '.1f'):>10}  {note}".rstrip()
        )
    lines.append(
        f"speedup vs Captum (captum/ours) {_fmt(result['speedup_vs_captum'], '.2f')}x   "
        f"vs floor (ours/floor) {_fmt(result['ours_vs_floor'], '.2f')}x   "
        f"captum/floor {_fmt(result['captum_vs_floor'], '.2f')}x"
    )
    return "\n".join(lines)


def format_targets(checked: list[dict[str, Any]]) -> str:
    """One ``PASS``/``FAIL``/``MISSING`` line per target.

    Parameters
    ----------
    checked : list of dict
        Output of :func:`check_targets`.

    Returns
    -------
    str
    """
    lines = []
    for t in checked:
        value = _fmt(t["value"], ".2f")
        lines.append(
            f"{t['status']:<8}{t['workload']} {t['label']} {value} "
            f"(target {t['op']} {t['threshold']:g}, {t['device']})"
        )
    return "\n".join(lines)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write the run's results as indented JSON, creating parent folders.

    Parameters
    ----------
    path : pathlib.Path
        Destination file.
    payload : dict
        ``meta``, ``workloads`` and ``targets``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
