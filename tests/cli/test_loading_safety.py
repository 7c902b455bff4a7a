"""Crafted model files must not run code: each attack writes a marker if it runs."""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.export.pt2_archive import constants as pt2

from algebra.cli.archive import archive_risks, foreign_calls
from algebra.cli.loading import load_model
from algebra.cli.main import main

pytestmark = pytest.mark.filterwarnings(
    "ignore:`torch.jit.script` is deprecated", "ignore::FutureWarning"
)


class _Marker:
    """Unpickling it creates a directory: the sign that the file ran code."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (os.makedirs, (self.path,))


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 2)).eval()


def _exported(tmp_path: Path) -> Path:
    path = tmp_path / "good.pt2"
    batch = torch.export.Dim("batch")
    program = torch.export.export(_net(), (torch.rand(2, 4),), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(path))
    return path


Edit = Callable[[str, bytes], bytes]


def _rewrite(src: Path, dst: Path, edit: Edit, extra: dict[str, bytes] | None = None) -> Path:
    """Copy a zip archive, passing each entry (name without the root folder) through edit."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        root = zin.namelist()[0].split("/", 1)[0]
        infos = zin.infolist()
        # JSON configs first, so an edit knows which files they name.
        order = sorted(infos, key=lambda i: not i.filename.endswith(".json"))
        edited = {i.filename: edit(i.filename.split("/", 1)[1], zin.read(i)) for i in order}
        for info in infos:
            zout.writestr(info, edited[info.filename])
        for inner, data in (extra or {}).items():
            zout.writestr(f"{root}/{inner}", data)
    return dst


def _saved(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _pickled_weight(marker: Path) -> Edit:
    # The issue's reproduction: the first weight marked use_pickle, its file a pickle.
    state: dict[str, str] = {}

    def edit(inner: str, data: bytes) -> bytes:
        if inner.endswith("model_weights_config.json"):
            config = json.loads(data)
            first = next(iter(config["config"].values()))
            first["use_pickle"] = True
            state["file"] = first["path_name"]
            return json.dumps(config).encode()
        if state.get("file") and inner == pt2.WEIGHTS_DIR + state["file"]:
            return _saved(_Marker(marker))
        return data

    return edit


def _opaque_constant(marker: Path) -> tuple[Edit, dict[str, bytes]]:
    name = pt2.OPAQUE_OBJ_FILENAME_PREFIX + "0"

    def edit(inner: str, data: bytes) -> bytes:
        if inner.endswith("model_constants_config.json"):
            entry = {"path_name": name, "is_param": False, "use_pickle": True, "tensor_meta": None}
            return json.dumps({"config": {"evil": entry}}).encode()
        return data

    return edit, {pt2.CONSTANTS_DIR + name: pickle.dumps(_Marker(marker))}


def _sample_inputs(marker: Path) -> Edit:
    def edit(inner: str, data: bytes) -> bytes:
        return _saved(_Marker(marker)) if inner.startswith(pt2.SAMPLE_INPUTS_DIR) else data

    return edit


def _sympy_expression(marker: Path) -> Edit:
    def edit(inner: str, data: bytes) -> bytes:
        if inner.startswith(pt2.MODELS_DIR):
            text = data.decode()
            start = text.index('"expr_str": "') + len('"expr_str": "')
            end = text.index('"', start)
            code = f"__import__('os').makedirs({str(marker)!r}) or {text[start:end]}"
            return (text[:start] + code.replace('"', '\\"') + text[end:]).encode()
        return data

    return edit


def _name_in_code(marker: Path) -> Edit:
    # A parameter path that breaks out of the string torch writes it into.
    source = f"import os; os.makedirs({str(marker)!r})"
    codes = ",".join(map(str, source.encode()))
    payload = "0.w" + '"+str(exec(bytes([' + codes + '])))+"' + "eight"

    def edit(inner: str, data: bytes) -> bytes:
        if inner.endswith(".json"):
            return data.replace(b'"0.weight"', json.dumps(payload).encode())
        return data

    return edit


ATTACKS = {
    "pickled_weight": lambda m: (_pickled_weight(m), None),
    "opaque_constant": _opaque_constant,
    "sample_inputs": lambda m: (_sample_inputs(m), None),
    "legacy_weights": lambda m: (
        lambda i, d: d,
        {pt2.WEIGHTS_DIR + "model.pt": _saved(_Marker(m))},
    ),
    "sympy_expression": lambda m: (_sympy_expression(m), None),
    "name_in_code": lambda m: (_name_in_code(m), None),
    "aotinductor": lambda m: (lambda i, d: d, {pt2.AOTINDUCTOR_DIR + "model/model.so": b"\x7fELF"}),
}


@pytest.mark.parametrize("attack", ATTACKS)
def test_crafted_export_archives_are_refused(tmp_path: Path, attack: str):
    marker = tmp_path / "ran"
    edit, extra = ATTACKS[attack](marker)
    evil = _rewrite(_exported(tmp_path), tmp_path / "evil.pt2", edit, extra)
    assert archive_risks(evil)
    with pytest.raises(ValueError, match=r"runs code from the file.*--trust-pickle"):
        load_model(evil)
    assert not marker.exists()


@pytest.mark.parametrize("attack", ["pickled_weight", "opaque_constant", "sympy_expression"])
def test_the_attacks_are_live(tmp_path: Path, attack: str):
    # Trusted, the same files do run their code: the refusal above is what stops them.
    marker = tmp_path / "ran"
    edit, extra = ATTACKS[attack](marker)
    evil = _rewrite(_exported(tmp_path), tmp_path / "evil.pt2", edit, extra)
    with contextlib.suppress(ValueError):
        load_model(evil, trust_pickle=True)
    assert marker.exists()


def test_the_issue_reproduction_through_the_cli(tmp_path: Path):
    marker = tmp_path / "ran"
    evil = _rewrite(_exported(tmp_path), tmp_path / "evil.pt2", _pickled_weight(marker))
    torch.save(torch.rand(3, 4), tmp_path / "x.pt")
    argv = ["query", "select * from f(x)", "--model", str(evil), "--bind", f"x={tmp_path}/x.pt"]
    with contextlib.redirect_stderr(io.StringIO()) as err:
        status = main(argv)
    assert status == 2
    assert "--trust-pickle" in err.getvalue() and "use_pickle" in err.getvalue()
    assert not marker.exists()


def test_duplicate_entries_are_refused(tmp_path: Path):
    good = _exported(tmp_path)
    with zipfile.ZipFile(good) as zin:
        config = next(n for n in zin.namelist() if n.endswith("model_weights_config.json"))
        data = zin.read(config)
    path = tmp_path / "dup.pt2"
    path.write_bytes(good.read_bytes())
    with (
        pytest.warns(UserWarning, match="Duplicate name"),
        zipfile.ZipFile(path, "a") as z,
    ):
        z.writestr(config, data)
    with pytest.raises(ValueError, match="duplicate entries"):
        load_model(path)


def test_plain_exports_load_and_trusted_pickled_tensors_too(tmp_path: Path):
    good = _exported(tmp_path)
    assert archive_risks(good) == []
    x = torch.rand(5, 4)
    torch.testing.assert_close(load_model(good)(x), _net()(x))

    # A weight really stored as a pickled tensor: refused, and loads when trusted.
    def pickled_tensor(inner: str, data: bytes) -> bytes:
        if inner.endswith("model_weights_config.json"):
            config = json.loads(data)
            config["config"]["0.bias"]["use_pickle"] = True
            path_name = config["config"]["0.bias"]["path_name"]
            pickled_tensor.file = pt2.WEIGHTS_DIR + path_name  # type: ignore[attr-defined]
            return json.dumps(config).encode()
        if inner == getattr(pickled_tensor, "file", None):
            return _saved(nn.Parameter(_net()[0].bias.detach().clone()))
        return data

    stored = _rewrite(good, tmp_path / "pickled.pt2", pickled_tensor)
    with pytest.raises(ValueError, match=r"weight '0\.bias' is pickled"):
        load_model(stored)
    torch.testing.assert_close(load_model(stored, trust_pickle=True)(x), _net()(x))


def test_foreign_calls_in_a_graph_are_found():
    program = torch.export.export(_net(), (torch.rand(2, 4),))
    assert foreign_calls(program) == []
    node = next(n for n in program.graph.nodes if n.op == "call_function")
    node.target = os.getcwd
    assert foreign_calls(program) == ["getcwd"]


@pytest.mark.parametrize("member", ["constants.pkl", "data.pkl"])
def test_torchscript_never_unpickles_python_objects(tmp_path: Path, member: str):
    # TorchScript reads its pickles with its own unpickler, which knows no Python globals.
    marker = tmp_path / "ran"
    good = tmp_path / "scripted.pt"
    torch.jit.script(nn.Linear(4, 3)).save(str(good))

    def edit(inner: str, data: bytes) -> bytes:
        return pickle.dumps(_Marker(marker), protocol=2) if inner == member else data

    evil = _rewrite(good, tmp_path / "evil.pt", edit)
    for trust in (False, True):
        with pytest.raises(ValueError, match="cannot load TorchScript model"):
            load_model(evil, trust_pickle=trust)
    assert not marker.exists()
