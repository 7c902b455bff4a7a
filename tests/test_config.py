"""``ia.options`` and ``ia.set_options``: defaults, validation, restoring, suggestions."""

from __future__ import annotations

import pytest
import torch

import algebra as ia

FLAGS = ("simplify", "share_forward", "fuse_targets", "share_paths", "chunk")
DEFAULTS = {
    "memory_budget": None,
    "precision": "fp32",
    "compile": False,
    "session_bytes": 512 * 2**20,
}


def _snapshot() -> dict:
    top = {name: getattr(ia.options, name) for name in DEFAULTS}
    return {**top, **{f: getattr(ia.options.optimizer, f) for f in FLAGS}}


def test_defaults():
    assert _snapshot() == {**DEFAULTS, **dict.fromkeys(FLAGS, True)}


def test_set_options_changes_and_restores():
    before = _snapshot()
    changes = {
        "memory_budget": 4096,
        "precision": "bf16",
        "compile": True,
        "session_bytes": 0,
        **dict.fromkeys(FLAGS, False),
    }
    with ia.set_options(**changes) as opts:
        assert opts is ia.options
        assert _snapshot() == changes
    assert _snapshot() == before


def test_set_options_restores_after_an_exception():
    before = _snapshot()
    with pytest.raises(KeyError), ia.set_options(memory_budget=10, chunk=False, share_paths=False):
        assert ia.options.optimizer.chunk is False
        raise KeyError("boom")
    assert _snapshot() == before


def test_set_options_restores_what_was_set_before_a_bad_value():
    before = _snapshot()
    with (
        pytest.raises(ValueError, match="precision"),
        ia.set_options(chunk=False, precision="fp16"),
    ):
        pass  # pragma: no cover
    assert _snapshot() == before


def test_set_options_restores_attribute_changes_made_inside():
    before = _snapshot()
    with ia.set_options(chunk=False):
        ia.options.memory_budget = 123
        ia.options.optimizer.fuse_targets = False
    assert _snapshot() == before


def test_nested_set_options():
    with ia.set_options(memory_budget=1000, chunk=False):
        with ia.set_options(memory_budget=2000):
            assert ia.options.memory_budget == 2000
            assert ia.options.optimizer.chunk is False
        assert ia.options.memory_budget == 1000
    assert ia.options.memory_budget is None and ia.options.optimizer.chunk is True


def test_attribute_changes_persist_until_reset():
    try:
        ia.options.optimizer.share_paths = False
        ia.options.memory_budget = 2**20
        assert ia.options.optimizer.share_paths is False
        assert ia.options.memory_budget == 2**20
    finally:
        ia.options.optimizer.share_paths = True
        ia.options.memory_budget = None
    assert _snapshot() == {**DEFAULTS, **dict.fromkeys(FLAGS, True)}


@pytest.mark.parametrize(
    ("name", "value", "error"),
    [
        ("memory_budget", 0, ValueError),
        ("memory_budget", -5, ValueError),
        ("memory_budget", 1.5, ValueError),
        ("memory_budget", True, ValueError),
        ("memory_budget", "1GB", ValueError),
        ("session_bytes", -1, ValueError),
        ("session_bytes", None, ValueError),
        ("session_bytes", 2.0, ValueError),
        ("precision", "fp16", ValueError),
        ("precision", None, ValueError),
        ("compile", 1, TypeError),
        ("compile", "yes", TypeError),
        ("optimizer", {"chunk": False}, TypeError),
    ],
)
def test_bad_values_name_the_option(name, value, error):
    before = _snapshot()
    with pytest.raises(error, match=rf"^{name}: "):
        setattr(ia.options, name, value)
    if name == "optimizer":  # not a set_options name: its flags are
        with pytest.raises(AttributeError, match="no option 'optimizer'"):
            ia.set_options(optimizer=value).__enter__()
    else:
        with pytest.raises(error, match=rf"^{name}: "), ia.set_options(**{name: value}):
            pass  # pragma: no cover
    assert _snapshot() == before


@pytest.mark.parametrize("flag", FLAGS)
@pytest.mark.parametrize("value", [0, 1, "False", None])
def test_flags_must_be_booleans(flag, value):
    with pytest.raises(TypeError, match=rf"optimizer\.{flag}: expected True or False"):
        setattr(ia.options.optimizer, flag, value)
    with pytest.raises(TypeError, match=rf"optimizer\.{flag}"), ia.set_options(**{flag: value}):
        pass  # pragma: no cover
    assert getattr(ia.options.optimizer, flag) is True


def test_accepted_edge_values():
    with ia.set_options(memory_budget=1, session_bytes=0):
        assert (ia.options.memory_budget, ia.options.session_bytes) == (1, 0)
        ia.options.memory_budget = None
        assert ia.options.memory_budget is None


@pytest.mark.parametrize(
    ("misspelt", "suggestion"),
    [
        ("memory_budgt", "memory_budget"),
        ("fuse_target", "fuse_targets"),
        ("chunks", "chunk"),
        ("share_path", "share_paths"),
        ("precison", "precision"),
    ],
)
def test_set_options_suggests_close_matches(misspelt, suggestion):
    before = _snapshot()
    with (
        pytest.raises(
            AttributeError, match=rf"no option '{misspelt}'\. Did you mean '{suggestion}'"
        ),
        ia.set_options(chunk=False, **{misspelt: 1}),
    ):
        pass  # pragma: no cover
    assert _snapshot() == before  # nothing was applied


def test_attributes_suggest_close_matches():
    with pytest.raises(AttributeError, match=r"ia\.options has no option .*'memory_budget'"):
        ia.options.memroy_budget = 1
    with pytest.raises(AttributeError, match=r"ia\.options\.optimizer .*'share_forward'"):
        ia.options.optimizer.share_froward = True
    with pytest.raises(AttributeError) as caught:
        ia.options.optimizer.zzzz = True
    assert "Did you mean" not in str(caught.value)
    assert not hasattr(ia.options, "memroy_budget")


def test_options_apply_to_compute_inside_the_block(mlp, features, counting):
    net = counting(mlp)
    q = ia.model(net).on(features)
    expr = q.integrated_gradients(0, steps=4)
    ia.compute(expr, session=ia.Session())
    net.calls = 0
    with ia.set_options(memory_budget=1):
        ia.compute(expr, session=ia.Session())
    chunked = net.calls
    net.calls = 0
    ia.compute(expr, session=ia.Session())
    assert chunked > 2 and net.calls == 2  # inputs and the path, once the block is left


def test_bf16_is_refused_on_cpu_at_compute(mlp, features):
    q = ia.model(mlp).on(features)
    with ia.set_options(precision="bf16"):
        q.saliency(0).explain()  # planning runs nothing, so it does not fail
        with pytest.raises(ValueError, match=r"precision.*CUDA"):
            ia.compute(q.saliency(0), session=ia.Session())
    (result,) = ia.compute(q.saliency(0), session=ia.Session())
    assert result.dtype == "float32"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="bf16 autocast needs CUDA")
def test_bf16_on_cuda_is_close_to_fp32(cnn, images):
    q = ia.model(cnn.cuda()).on(images.cuda())
    (fp32,) = ia.compute(q.saliency(0, abs=False), session=ia.Session())
    with ia.set_options(precision="bf16"):
        (bf16,) = ia.compute(q.saliency(0, abs=False), session=ia.Session())
    scale = float(abs(fp32.values).max())
    assert abs(bf16.values.astype("float32") - fp32.values).max() < 0.1 * scale
