"""NeuroInspect evidence on the spurious-mark digits task, at full size, over several seeds.

Run: ``.venv/bin/python -m benchmarks.neuroinspect_evidence --seeds 0,1,2,3,4,5``
Prints one markdown table per claim (the figures in docs/neuroinspect.md, "Evidence").

Everything runs through the public API (``ia.model``, ``q.mistakes(...).counterfactual_neurons``,
``m.mitigate(...).evaluate``, ``m.visualize``); the kernels only measure (pooled features for
the mark and digit effects, and the ceiling's head). Per seed: build the task and the model
(:func:`algebra.demo.data.spurious_model`), find the counterfactual neurons of class 8
on the audit split, measure how the top-voted
neurons respond to the mark and to the digit, mitigate with the reference's automatic
choice (the top-10 "insufficient" neurons) and every default, beside the control,
selecting checkpoints on the audit split (and, as a variant, on the biased validation
split), and visualise the top neuron (450 steps, 4 images), with and without the class.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch

import algebra as ia
from algebra.demo import data as dd
from algebra.kernels.accuracy import accuracy
from algebra.kernels.decision import decision_features, find_decision

CLS = 8
AUTO = 10  # the reference's automatic choice: the top-10 insufficient neurons


def mark_and_digit_effects(model, task, decision):
    """Per neuron: mean rise when the mark is added to unmarked test images (paired), and
    the mean difference between class-8 and other unmarked test images."""
    plain = task.x_test[~task.marked_test]
    labels = task.y_test[~task.marked_test]
    z, _ = decision_features(model, decision, plain)
    z_marked, _ = decision_features(model, decision, dd.add_mark(plain))
    mark = (z_marked - z).mean(0)
    digit = z[labels == CLS].mean(0) - z[labels != CLS].mean(0)
    return mark, digit


def oracle(model, task, decision, seed, score) -> dict:
    """The ceiling of a decision-layer edit: a head fit on the same backbone to training
    images whose marks fall at random (an unbiased data set the user does not have)."""
    marked = torch.rand(len(task.y_train), generator=torch.Generator().manual_seed(seed)) < 0.5
    z, _ = decision_features(model, decision, dd.add_mark(task.clean_train, marked))
    torch.manual_seed(seed)
    head = torch.nn.Linear(decision.neurons, decision.classes)
    dd.train_classifier(head, z, task.y_train, epochs=20, seed=seed)
    return score(head.weight.detach(), head.bias.detach())


def run_seed(seed: int, steps: int, images: int) -> dict:
    start = time.perf_counter()
    task = dd.spurious_task(cls=CLS, seed=seed)
    model = dd.spurious_model(task, seed=seed)
    built = time.perf_counter() - start
    m = ia.model(model, name="digits", classes=[str(c) for c in range(10)])
    decision = find_decision(model, task.x_test[:8], layer="block4")
    z_test, _ = decision_features(model, decision, task.x_test)

    def score(weight, bias):  # for the ceiling, a head outside the API
        acc = accuracy(weight, bias, z_test, task.y_test, task.groups_test)
        return {
            "overall": acc.overall,
            "worst": acc.worst_class,
            "c_nomark": acc.per_group[2 * CLS],
            "worst_group": acc.worst_group,
        }

    def scored(report, version: str) -> dict:
        row = report.sel(version=version)
        return {
            "overall": float(row.overall),
            "worst": float(row.worst_class),
            "c_nomark": float(row.per_group.sel(group=2 * CLS)),
            "worst_group": float(row.worst_group),
        }

    out: dict = {"seed": seed, "build_s": built}
    t0 = time.perf_counter()
    q = m.on(task.x_audit, labels=task.y_audit)
    found = q.mistakes(CLS).counterfactual_neurons(CLS, layer="block4").compute()
    out["cf_s"] = time.perf_counter() - t0
    out["mistakes"] = found.attrs["mistakes"]
    out["flipped"] = float(found.flipped.mean())
    out["max_steps"] = int(found.steps.max())
    ranked = torch.tensor(found.attrs["insufficient"], dtype=torch.long)
    mark, digit = mark_and_digit_effects(model, task, decision)
    top3 = ranked[:3]
    out["top3"] = top3.tolist()
    out["mark3"] = float(mark[top3].mean())
    out["digit3"] = float(digit[top3].mean())
    out["markish3"] = int((mark[top3] > digit[top3]).sum())
    neurons = ranked[:AUTO].tolist()
    for name, val in (("audit", (task.x_audit, task.y_audit)), ("val", (task.x_val, task.y_val))):
        t0 = time.perf_counter()
        fix = m.mitigate(
            neurons, CLS, (task.x_train, task.y_train), val_data=val, layer="block4",
            control=True,
        )  # fmt: skip
        out[f"mit_{name}_s"] = time.perf_counter() - t0
        test = fix.evaluate((task.x_test, task.y_test), groups=task.groups_test)
        out["before"] = scored(test, "before")
        out[f"method_{name}"] = scored(test, "after")
        out[f"control_{name}"] = scored(test, "control")
        out[f"ratio_{name}"] = fix.ratio
    out["oracle"] = oracle(model, task, decision, seed, score)
    top = int(ranked[0])
    z_real, _ = decision_features(model, decision, torch.cat([task.x_test, task.x_audit]))
    out["q99"] = float(torch.quantile(z_real[:, top], 0.99))
    t0 = time.perf_counter()
    common = dict(steps=steps, images=images, example=task.x_test, seed=seed)
    plain = m.visualize("block4", [top], **common)
    conditioned = m.visualize("block4", [top], cls=CLS, **common)
    out["vis_s"] = time.perf_counter() - t0
    out["vis_act_min"] = float(plain.activation.min())
    out["vis_act_cls_min"] = float(conditioned.activation.min())
    out["logit_plain"] = float(plain.logits.sel({"class": CLS}).mean())
    out["logit_cls"] = float(conditioned.logits.sel({"class": CLS}).mean())
    return out


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def report(rows: list[dict]) -> None:
    mean = statistics.fmean
    print("\n### Counterfactual neurons (class 8, audit split)\n")
    print(
        "| seed | mistakes | flipped | max steps | top-3 voted | mark effect | digit effect | top-3 with mark > digit |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['seed']} | {r['mistakes']} | {pct(r['flipped'])}% | {r['max_steps']} | "
            f"{r['top3']} | {r['mark3']:.2f} | {r['digit3']:.2f} | {r['markish3']}/3 |"
        )
    for name, what in (("audit", "audit split (unbiased)"), ("val", "validation split (biased)")):
        print(
            f"\n### Mitigation, top-{AUTO} insufficient neurons, checkpoints chosen on the {what}\n"
        )
        print(
            "Test accuracy in %: before -> after (method) | control. c-nomark: class 8 without the mark.\n"
        )
        print("| seed | overall | worst class | class 8 without mark | worst group | o |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            b, m, c = r["before"], r[f"method_{name}"], r[f"control_{name}"]
            cells = [
                f"{pct(b[k])} -> {pct(m[k])} \\| {pct(c[k])}"
                for k in ("overall", "worst", "c_nomark", "worst_group")
            ]
            print(f"| {r['seed']} | " + " | ".join(cells) + f" | {r[f'ratio_{name}']:.3f} |")
        gains = {
            who: {
                k: mean(r[f"{who}_{name}"][k] - r["before"][k] for r in rows)
                for k in ("overall", "worst", "c_nomark", "worst_group")
            }
            for who in ("method", "control")
        }
        for who, g in gains.items():
            print(
                f"| mean change, {who} | {100 * g['overall']:+.1f} | {100 * g['worst']:+.1f} | "
                f"{100 * g['c_nomark']:+.1f} | {100 * g['worst_group']:+.1f} | |"
            )
    print("\nCeiling: a head fit on the same backbone to unbiased marks (test %):\n")
    print("| seed | overall | worst class | class 8 without mark |")
    print("|---|---|---|---|")
    for r in rows:
        o = r["oracle"]
        print(f"| {r['seed']} | {pct(o['overall'])} | {pct(o['worst'])} | {pct(o['c_nomark'])} |")
    print("\n### Visualisation of the top-voted neuron (block4)\n")
    print(
        "| seed | neuron | 99th pct. on real images | min activation, plain | min activation, class 8 | logit 8 plain | logit 8 conditioned |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['seed']} | {r['top3'][0]} | {r['q99']:.2f} | {r['vis_act_min']:.2f} | "
            f"{r['vis_act_cls_min']:.2f} | {r['logit_plain']:.2f} | {r['logit_cls']:.2f} |"
        )
    print("\n### Time per seed (s)\n")
    print("| seed | task+model | counterfactual | mitigation (method+control) | 2 visualisations |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['seed']} | {r['build_s']:.1f} | {r['cf_s']:.2f} | {r['mit_audit_s']:.2f} | "
            f"{r['vis_s']:.1f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.neuroinspect_evidence")
    parser.add_argument("--seeds", default="0,1,2,3,4,5")
    parser.add_argument("--steps", type=int, default=450)
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (small convs: 1 is fastest)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", UserWarning)
    ia.options.progress = False
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        rows.append(run_seed(seed, args.steps, args.images))
        print(f"seed {seed} done", flush=True)
    report(rows)


if __name__ == "__main__":
    main()
