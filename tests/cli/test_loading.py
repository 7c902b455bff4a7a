"""Model and tensor files for the command line: safe formats load, pickles need trust."""

from __future__ import annotations

import random
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import algebra as ia
from algebra.cli.loading import load_model, load_tensor

# TorchScript is deprecated in recent torch, but users still hold such files.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")


class _Opaque:
    """A class a weights-only load refuses (module-level, so it pickles)."""


def _small() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(fc1=nn.Linear(4, 8), act=nn.ReLU(), fc2=nn.Linear(8, 3)))


# ----------------------------------------------------------------------------- models


def test_torchscript_loads_with_its_mode(tmp_path: Path):
    net = _small().train()
    path = tmp_path / "scripted.pt"
    torch.jit.script(net).save(str(path))
    loaded = load_model(path)
    x = torch.rand(2, 4)
    assert torch.equal(loaded(x), net(x))
    assert loaded.training  # the mode it was saved in; the library switches to eval itself


def test_torch_export_loads_with_named_layers_and_runs_in_the_library(
    tmp_path: Path, cnn: nn.Sequential, images: torch.Tensor
):
    path = tmp_path / "model.pt2"
    torch.export.save(torch.export.export(cnn, (images,)), str(path))
    loaded = load_model(path)
    assert isinstance(loaded, nn.Module)
    assert not loaded.training
    assert {"conv1", "relu2", "fc"} <= {name for name, _ in loaded.named_modules()}
    assert torch.allclose(loaded(images), cnn(images), atol=1e-6)
    # The module of ExportedProgram.module() refuses eval(); the loaded one runs queries,
    # layer queries included.
    got = ia.model(loaded).on(images).layer("conv2").saliency("pred").compute()
    want = ia.model(cnn).on(images).layer("conv2").saliency("pred").compute()
    np.testing.assert_allclose(got.values, want.values, atol=1e-6)
    # Recognised by content, not by extension.
    renamed = tmp_path / "model.pt"
    renamed.write_bytes(path.read_bytes())
    assert torch.allclose(load_model(renamed)(images), cnn(images), atol=1e-6)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_pickled_module_needs_trust(tmp_path: Path, legacy: bool):
    net = _small().train()
    path = tmp_path / "pickled.pt"
    torch.save(net, path, _use_new_zipfile_serialization=not legacy)
    with pytest.raises(ValueError, match="pickled module") as info:
        load_model(path)
    message = str(info.value)
    assert "--trust-pickle" in message
    assert "torch.export" in message and "torch.jit.script" in message
    assert "Sequential" in message
    loaded = load_model(path, trust_pickle=True)
    x = torch.rand(2, 4)
    assert torch.equal(loaded(x), net(x))
    assert loaded.training  # left as saved


@pytest.mark.parametrize(
    "obj",
    [
        _small().state_dict(),
        {"model_state_dict": _small().state_dict(), "epoch": 3},
    ],
    ids=["state_dict", "checkpoint"],
)
def test_weights_alone_are_refused(tmp_path: Path, obj: dict):
    path = tmp_path / "weights.pt"
    torch.save(obj, path)
    for trust in (False, True):
        with pytest.raises(ValueError, match=r"state_dict.*no architecture"):
            load_model(path, trust_pickle=trust)


def test_a_tensor_is_not_a_model(tmp_path: Path):
    path = tmp_path / "tensor.pt"
    torch.save(torch.zeros(2), path)
    with pytest.raises(ValueError, match=r"holds a Tensor, not a torch\.nn\.Module"):
        load_model(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("random", "not a model file.*damaged or in another format"),
        ("empty", "is empty"),
        ("truncated", "not a model file"),
    ],
)
def test_garbage_model_files_raise_value_error(tmp_path: Path, content: str, message: str):
    path = tmp_path / "garbage.pt"
    if content == "random":
        path.write_bytes(random.Random(0).randbytes(512))
    elif content == "truncated":
        torch.jit.script(_small()).save(str(path))
        path.write_bytes(path.read_bytes()[:600])
    else:
        path.write_bytes(b"")
    for trust in (False, True):  # trust never unpickles a file that is no pickle
        with pytest.raises(ValueError, match=message):
            load_model(path, trust_pickle=trust)


def test_missing_model_file(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match=r"nope\.pt"):
        load_model(tmp_path / "nope.pt")
    with pytest.raises(ValueError, match="not a file"):
        load_model(tmp_path)


# ---------------------------------------------------------------------------- tensors


def test_pt_tensor_dict_and_tuple(tmp_path: Path):
    x, y = torch.rand(3, 2), torch.tensor([0, 1, 2])
    torch.save(x, tmp_path / "t.pt")
    torch.save({"inputs": x, "labels": y}, tmp_path / "d.pt")
    torch.save({"x": x, "y": [0, 1, 2]}, tmp_path / "xy.pth")
    torch.save((x, y), tmp_path / "tuple.pt")
    torch.save({"images": x}, tmp_path / "single.pt")
    inputs, labels = load_tensor(tmp_path / "t.pt")
    assert torch.equal(inputs, x) and labels is None
    for name in ["d.pt", "xy.pth", "tuple.pt"]:
        inputs, labels = load_tensor(tmp_path / name)
        assert torch.equal(inputs, x) and torch.equal(labels, y), name
    inputs, labels = load_tensor(tmp_path / "single.pt")
    assert torch.equal(inputs, x) and labels is None


def test_npy_and_npz(tmp_path: Path):
    x, y = np.random.default_rng(0).random((3, 1, 4, 4)), np.array([2, 0, 1])
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "xy.npz", x=x, y=y)
    np.savez(tmp_path / "named.npz", inputs=x, labels=y)
    np.savez(tmp_path / "single.npz", x)  # stored as arr_0
    inputs, labels = load_tensor(tmp_path / "x.npy")
    assert inputs.dtype == torch.float32 and labels is None  # float64 -> float32
    np.testing.assert_allclose(inputs.numpy(), x, rtol=1e-6)
    for name in ["xy.npz", "named.npz"]:
        inputs, labels = load_tensor(tmp_path / name)
        assert inputs.shape == (3, 1, 4, 4) and labels.tolist() == [2, 0, 1], name
    inputs, labels = load_tensor(tmp_path / "single.npz")
    assert inputs.shape == (3, 1, 4, 4) and labels is None


def test_dtypes_other_than_float64_are_kept(tmp_path: Path):
    np.save(tmp_path / "u8.npy", np.zeros((2, 3), np.uint8))
    torch.save(torch.zeros(2, 3, dtype=torch.float16), tmp_path / "h.pt")
    np.save(tmp_path / "big_endian.npy", np.ones((2, 3), dtype=">f4"))
    assert load_tensor(tmp_path / "u8.npy")[0].dtype == torch.uint8
    assert load_tensor(tmp_path / "h.pt")[0].dtype == torch.float16
    assert torch.equal(load_tensor(tmp_path / "big_endian.npy")[0], torch.ones(2, 3))


def test_content_decides_for_other_extensions(tmp_path: Path):
    np.save(tmp_path / "a.npy", np.zeros((2, 3)))
    np.savez(tmp_path / "b.npz", x=np.zeros((2, 3)), y=np.array([0, 1]))
    torch.save(torch.zeros(2, 3), tmp_path / "c.pt")
    for src, dst in [("a.npy", "a.bin"), ("b.npz", "b.data"), ("c.pt", "c.tensor")]:
        (tmp_path / dst).write_bytes((tmp_path / src).read_bytes())
        assert load_tensor(tmp_path / dst)[0].shape == (2, 3), dst


def test_missing_keys_name_the_path_and_the_keys_found(tmp_path: Path):
    path = tmp_path / "bad.npz"
    np.savez(path, images=np.zeros((2, 3)), targets=np.array([0, 1]))
    with pytest.raises(ValueError, match=r"bad\.npz.*'inputs' or 'x'.*'images', 'targets'"):
        load_tensor(path)
    torch.save({"a": torch.zeros(2), "b": torch.zeros(2)}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="keys found: 'a', 'b'"):
        load_tensor(tmp_path / "bad.pt")
    torch.save({"inputs": torch.zeros(2), "x": torch.zeros(2)}, tmp_path / "both.pt")
    with pytest.raises(ValueError, match="both 'inputs' and 'x'"):
        load_tensor(tmp_path / "both.pt")


def test_labels_must_match_the_inputs(tmp_path: Path):
    torch.save((torch.zeros(3, 2), torch.tensor([0, 1])), tmp_path / "t.pt")
    with pytest.raises(ValueError, match="one label per input"):
        load_tensor(tmp_path / "t.pt")


def test_unsafe_or_broken_tensor_files_raise_value_error(tmp_path: Path):
    torch.save({"x": torch.zeros(2), "extra": _Opaque()}, tmp_path / "pickle.pt")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "garbage.pt").write_bytes(random.Random(1).randbytes(256))
    (tmp_path / "garbage.npz").write_bytes(random.Random(1).randbytes(256))
    np.save(tmp_path / "text.npy", np.array(["a", "b"]))
    with zipfile.ZipFile(tmp_path / "empty.npz", "w"):
        pass
    for name in ["pickle.pt", "objects.npy", "garbage.pt", "garbage.npz", "text.npy", "empty.npz"]:
        with pytest.raises(ValueError, match=name.replace(".", r"\.")):
            load_tensor(tmp_path / name)
    with pytest.raises(ValueError, match=r"pickled objects \(.*_Opaque\)"):
        load_tensor(tmp_path / "pickle.pt")
    torch.jit.script(_small()).save(str(tmp_path / "model.pt"))
    with pytest.raises(ValueError, match="holds a model"):
        load_tensor(tmp_path / "model.pt")
    with pytest.raises(FileNotFoundError, match=r"missing\.pt"):
        load_tensor(tmp_path / "missing.pt")
