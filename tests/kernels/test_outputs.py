"""Scores read from what a forward returns: tensors, dicts, namedtuples, tuples, objects;
scalar and sequence scores; the hook that applies a spec leaves nothing behind."""

from __future__ import annotations

from collections import namedtuple

import pytest
import torch

from algebra.kernels.outputs import OutputSpec, Scored, pick, scores, selecting

Out = namedtuple("Out", "loss logits")


class Fields:
    """An object with attributes, as some libraries return."""

    def __init__(self, logits: torch.Tensor):
        self.hidden = None
        self.logits = logits


def test_the_default_finds_a_tensor_or_its_logits():
    t = torch.arange(6.0).reshape(2, 3)
    for returned in (t, {"logits": t, "hidden": 1}, Out(None, t), Fields(t)):
        assert pick(returned, None) is t


def test_names_indices_and_callables():
    t = torch.ones(2, 3)
    assert pick({"scores": t}, "scores") is t
    assert pick(Out(None, t), "logits") is t
    assert pick(Fields(t), "logits") is t
    assert pick((torch.zeros(2), t), 1) is t
    assert pick((torch.zeros(2), t), -1) is t
    assert pick({"a": {"b": t}}, lambda out: out["a"]["b"]) is t


@pytest.mark.parametrize(
    ("returned", "select", "message"),
    [
        ({"logit": torch.ones(1)}, "logits", "has no 'logits'. Did you mean 'logit'"),
        (Out(None, torch.ones(1)), "logit", "has no 'logit'. Did you mean 'logits'"),
        (Fields(torch.ones(1)), "logitz", "Did you mean 'logits'"),
        ((torch.ones(1), torch.ones(1)), 2, "index 2 is outside the 2 elements"),
        (
            torch.ones(2, 3),
            0,
            "picks an element of a tuple, but the model's forward returns a tensor",
        ),
        ({"hidden": (1, 2)}, "hidden", "'hidden' gives a tuple of 2 elements, not a tensor"),
        (
            (torch.ones(1), torch.ones(1)),
            None,
            r"ia.model\(module, output=...\): an element's index \(output=0\)",
        ),
        ({"hidden": torch.ones(1)}, None, "a field or key name \\(output='scores'\\)"),
    ],
)
def test_what_is_not_there_names_output(returned, select, message):
    with pytest.raises(ValueError, match=message):
        pick(returned, select)


def test_scalar_sequence_and_other_shapes():
    assert scores(torch.arange(3.0), OutputSpec()).shape == (3, 1)
    seq = torch.arange(24.0).reshape(2, 3, 4)
    assert torch.equal(scores(seq, OutputSpec(position=-1)), seq[:, 2])
    assert torch.equal(scores(seq, OutputSpec(position=0)), seq[:, 0])
    assert torch.equal(scores(seq, OutputSpec(flatten=True)), seq.reshape(2, 12))
    with pytest.raises(ValueError, match=r"position: -4 is outside .* length 3"):
        scores(seq, OutputSpec(position=-4))
    with pytest.raises(
        ValueError, match=r"a sequence \[2, 3, 4\] = \[N, L, V\]; choose a position"
    ):
        scores(seq, OutputSpec())
    with pytest.raises(ValueError, match="position: the model's scores have shape"):
        scores(torch.ones(2, 3), OutputSpec(position=-1))
    with pytest.raises(ValueError, match=r"expected \[N, classes\], \[N\] or a sequence"):
        scores(torch.ones(2, 3, 4, 5), OutputSpec())


class Dict(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 4)

    def forward(self, x):
        return {"loss": None, "logits": self.fc(x)}


def test_selecting_applies_in_the_block_only():
    net = Dict()
    x = torch.ones(2, 3)
    with selecting(net, None):
        assert torch.equal(net(x), net.fc(x))
    assert isinstance(net(x), dict) and not net._forward_hooks


def test_selecting_removes_its_hook_after_an_error():
    net = Dict()
    with pytest.raises(ValueError, match="has no 'logit'"), selecting(net, OutputSpec("logit")):
        net(torch.ones(2, 3))
    assert not net._forward_hooks


def test_a_plain_classifier_passes_unchanged():
    net = torch.nn.Linear(3, 4)
    x = torch.ones(2, 3)
    with selecting(net, OutputSpec()):
        out = net(x)
    assert torch.equal(out, net(x))


def test_torchscript_runs_as_it_is_and_refuses_a_spec():
    net = torch.jit.script(torch.nn.Linear(3, 4))
    with selecting(net, None):
        assert net(torch.ones(1, 3)).shape == (1, 4)
    refused = pytest.raises(ValueError, match="TorchScript model cannot have its scores selected")
    with refused, selecting(net, OutputSpec(position=-1)):
        pass


def test_scored_wraps_a_model_run_whole():
    net = Dict()
    assert Scored(net, OutputSpec())(torch.ones(2, 3)).shape == (2, 4)
    assert Scored(net, OutputSpec(lambda o: o["logits"][:, 0]))(torch.ones(2, 3)).shape == (2, 1)
