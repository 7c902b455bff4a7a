"""The API side of the break-it run (issue 10): huge numbers, names in errors, duplicate
class names, the memory budget in explain(), and computes sharing a session from threads."""

from __future__ import annotations

import threading

import pytest
import torch

import algebra as ia
from algebra.cli.main import main


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda q: q.integrated_gradients(0, steps=10**100), r"steps: about 10\^100 is more"),
        (lambda q: q.integrated_gradients(0, steps=10**5000), r"steps: about 10\^5000"),
        (lambda q: q.saliency(10**30), r"target: class about 10\^30 is out of range"),
        (lambda q: q.saliency([0, 10**5000]), r"target: class about 10\^5000 is out of range"),
        (lambda q: q.saliency(ia.topk(10**40)), r"k: .*about 10\^40|target: topk"),
    ],
    ids=["steps", "steps_5000_digits", "target", "per_sample", "topk"],
)
def test_huge_integers_are_value_errors_at_construction(mlp, features, build, match):
    q = ia.model(mlp, classes=list("abcd")).on(features)
    with pytest.raises(ValueError, match=match):
        build(q)


def test_huge_steps_from_the_command_line_are_one_line(tmp_path, capsys, mlp):
    torch.save(torch.rand(2, 6), tmp_path / "x.pt")
    model = tmp_path / "m.pt2"
    torch.export.save(torch.export.export(mlp, (torch.rand(2, 6),)), str(model))
    text = f"select * from f(x) using integrated_gradients(steps={10**100})"
    code = main(["query", text, "--model", str(model), "--bind", f"x={tmp_path / 'x.pt'}"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("ialgebra: error: query: steps: about 10^100")
    assert "Traceback" not in err


def test_identity_errors_are_named_identity():
    with pytest.raises(ValueError, match=r"^identity: unknown value 'shap'"):
        ia.options.identity = "shap"


def test_duplicate_class_names_are_refused(mlp):
    with pytest.raises(ValueError, match=r"classes: each class name must be unique; 'a' appears"):
        ia.model(mlp, classes=["a", "a", "b", "c"])


def test_explain_says_when_a_pass_cannot_fit_the_budget():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(8 * 16 * 16, 10)
    ).eval()
    q = ia.model(net).on(torch.rand(4, 3, 16, 16))
    with ia.set_options(memory_budget=20_000):
        with pytest.warns(UserWarning, match="memory budget: 20000 bytes cannot hold"):
            q.saliency("all").compute(session=ia.Session())  # measures the activations
        text = q.saliency("all").explain()
    assert "over budget: inputs needs about" in text
    assert "over budget" not in q.saliency("all").explain()  # the default budget holds it


def test_threads_sharing_one_session_get_their_own_answers(cnn):
    images = torch.rand(6, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    q = ia.model(cnn).on(images)
    exprs = [q.saliency(c) for c in range(5)] + [q.integrated_gradients("pred", steps=4)]
    expected = [e.compute(session=ia.Session()).values for e in exprs]
    shared, errors = ia.Session(), []

    def worker(offset: int) -> None:
        try:
            for i in range(len(exprs)):
                k = (i + offset) % len(exprs)
                got = exprs[k].compute(session=shared)
                torch.testing.assert_close(
                    torch.from_numpy(got.values), torch.from_numpy(expected[k])
                )
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert shared.hits + shared.misses == 4 * len(exprs)
    assert len(shared) == len(exprs) and shared.nbytes == sum(e.nbytes for e in expected)
