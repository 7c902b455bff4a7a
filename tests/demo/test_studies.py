"""Each study end to end in quick mode: its figures exist, its key figures are finite and in
sane bounds, and the report shows them (``quick_demo`` runs three studies once per
session, ``cli_demo`` the adversarial one through the command line)."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

FIGURES = {
    "inconsistency": {"inconsistency_maps", "inconsistency_whatif"},
    "poisoning": {"poisoning_candidates", "poisoning_scores"},
    "neuroinspect": {"neuro_mistakes", "neuro_votes", "neuro_visualisations", "neuro_mitigation"},
}
PNG = b"\x89PNG\r\n\x1a\n"


def _metrics(report, name):
    (study,) = [s for s in report.studies if s.name == name]
    return study, {m.name: m for m in study.metrics}


def _pair(metric):
    """The two (or three) numbers of a key figure shown as 'a / b'."""
    return [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", metric.text.split(" of ")[0])]


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_every_figure_is_a_png_in_the_report(quick_demo, name):
    report, _ = quick_demo
    study, _ = _metrics(report, name)
    assert {f.file.removesuffix(".png") for f in study.figures} == FIGURES[name]
    page = report.index.read_text()
    for shown in study.figures:
        path = report.index.parent / shown.file
        assert path.read_bytes()[:8] == PNG and path.stat().st_size > 5000, shown.file
        assert shown.caption and shown.code and f"src='{shown.file}'" in page
    assert all(math.isfinite(m.value) for m in study.metrics)


def test_adversarial(cli_demo):
    done, root = cli_demo
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((root / "out" / "metrics.json").read_text())
    m = {k: v["value"] for k, v in report["studies"]["adversarial"]["metrics"].items()}
    clean, pgd, fgsm = (m[f"CNN accuracy, {k} inputs"] for k in ("clean", "PGD", "FGSM"))
    assert 0 <= pgd <= clean <= 1 and 0 <= fgsm <= clean
    assert pgd < 0.5  # the attack works even on the quick model
    for kind in ("pgd", "fgsm", "noise"):
        assert 0 <= m[f"divergence at block1 / block4, {kind}"] <= 2
    for key in ("detector ROC AUC, held out", "output-only baseline ROC AUC, held out"):
        assert 0 <= m[key] <= 1


def test_inconsistency(quick_demo):
    report, _ = quick_demo
    _, m = _metrics(report, "inconsistency")
    total = m["disagreements"].value
    assert 0 < total <= 540 and total == int(total)
    f_right, g_right = _pair(m["f right / g right"])
    assert 0 <= f_right + g_right <= min(total, 6)  # at most 6 explained in quick mode
    for k in (1, 2):
        for what in (f"agree after masking top-{k} / random-{k}", f"outputs closer, top-{k} / random-{k}"):  # fmt: skip
            assert all(0 <= v <= 1 for v in _pair(m[what]))


def test_poisoning(quick_demo):
    report, _ = quick_demo
    study, m = _metrics(report, "poisoning")
    auc, precision = m["ROC AUC, poisoned vs clean"].value, m["precision at k = 12 (the number poisoned)"].value  # fmt: skip
    assert 0.7 < auc <= 1 and 0 <= precision <= 1  # the trigger is easy to find, even here
    found = m["poisoned images among the top 16 (10%)"].value
    assert 0 <= found <= 12
    as_trained = _pair(m["clean accuracy / attack success, as trained"])
    cleaned = _pair(m["clean accuracy / attack success, without the top 10% of the ranking"])
    random = _pair(m["clean accuracy / attack success, without 10% at random"])
    assert all(0 <= v <= 1 for v in [*as_trained, *cleaned, *random])
    assert len(study.tables[0].rows) == 3


def test_neuroinspect(quick_demo):
    report, _ = quick_demo
    study, m = _metrics(report, "neuroinspect")
    mistakes = m["mistakes of class 8 on the audit split"].value
    assert 0 < mistakes <= 45 and 0 <= m["mistakes flipped by their counterfactual"].value <= 1
    for key in ("worst-class", "overall"):
        values = _pair(m[f"{key} accuracy before / after / control"])
        assert len(values) == 3 and all(0 <= v <= 1 for v in values)
    table = study.tables[-1]
    assert [r[0] for r in table.rows] == ["before", "after", "control"]
    assert np.all(np.isfinite(np.array([r[1:] for r in table.rows], dtype=float)))


def test_the_report_and_the_terminal_table(quick_demo):
    report, printed = quick_demo
    saved = json.loads(report.metrics.read_text())
    assert list(saved["studies"]) == ["inconsistency", "poisoning", "neuroinspect"]
    assert {m["name"] for m in saved["models"]} >= {"cnn", "mlp", "backdoored", "spurious"}
    for study in report.studies:  # every key figure in the terminal, as in metrics.json
        for metric in study.metrics:
            assert re.search(rf"{study.name}\s+{re.escape(metric.name)}\s+{re.escape(metric.text)}", printed)  # fmt: skip
    page = report.index.read_text()
    assert page.count("<figure>") == sum(len(v) for v in FIGURES.values())
    assert "Timings" in page and f"3 studies in {report.seconds:.1f} s" in printed
