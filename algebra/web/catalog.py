"""What the page can query: named models and named data sets, from files or the demo.

Files load through the command line's safe loaders (:mod:`algebra.cli.loading`): TorchScript
and inspected ``torch.export`` archives for models, ``.pt`` (``weights_only``), ``.npy`` and
``.npz`` (no pickle) for data. Nothing the page sends is ever loaded as a file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import algebra as ia

from ..cli.loading import load_model, load_tensor
from ..errors import did_you_mean

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class DataSet:
    """A named batch of inputs ``[N, ...]``, with labels when known, and a line about it;
    ``groups`` (one id per sample, named by ``group_names``) split it for a worst-group
    accuracy.

    Examples
    --------
    >>> d = DataSet("noise", torch.rand(3, 1, 4, 4))
    >>> d.size, d.images
    (3, True)
    """

    name: str
    x: torch.Tensor
    labels: torch.Tensor | None = None
    note: str = ""
    groups: torch.Tensor | None = None  # a group id per sample (NeuroInspect's worst group)
    group_names: dict[int, str] = field(default_factory=dict)

    @property
    def size(self) -> int:
        """The number of samples."""
        return int(self.x.shape[0])

    @property
    def images(self) -> bool:
        """Whether the samples are images ``[C, H, W]`` with 1 or 3 channels (thumbnails)."""
        return self.x.ndim == 4 and self.x.shape[1] in (1, 3)

    def describe(self) -> dict[str, Any]:
        """The data set as the page sees it (JSON).

        Examples
        --------
        >>> DataSet("noise", torch.rand(3, 4), torch.tensor([0, 1, 0])).describe()["shape"]
        [4]
        """
        return {
            "name": self.name,
            "size": self.size,
            "shape": list(self.x.shape[1:]),
            "labels": self.labels is not None,
            "images": self.images,
            "note": self.note,
        }


@dataclass
class Catalog:
    """The models and data sets served, by name; ``neuro`` holds NeuroInspect's defaults
    (``model``, ``layer``, ``cls``, and the data sets ``audit``, ``train``, ``val``,
    ``test``), when known.

    Examples
    --------
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3)).eval()
    >>> cat = Catalog({"net": ia.model(net, name="net")}, {"x": DataSet("x", torch.rand(2, 1, 4, 4))})
    >>> cat.model("net").name, cat.dataset("x").size
    ('net', 2)
    >>> cat.model("nte")
    Traceback (most recent call last):
    KeyError: "model: no model 'nte' is served; the models are 'net'. Did you mean 'net'?"
    """

    models: dict[str, ia.Model]
    data: dict[str, DataSet]
    neuro: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for kind, names in (("model", self.models), ("data", self.data)):
            for name in names:
                check_name(name, kind)
        if not self.models:
            raise ValueError("models: the page needs at least one model")
        if not self.data:
            raise ValueError("data: the page needs at least one data set")

    def model(self, name: str) -> ia.Model:
        """The model called ``name``; a ``KeyError`` naming close matches otherwise.

        Examples
        --------
        >>> cat = Catalog({"m": ia.model(torch.nn.Linear(2, 2))}, {"d": DataSet("d", torch.rand(1, 2))})
        >>> cat.model("m").layer_names
        ()
        """
        return _get(self.models, name, "model")

    def dataset(self, name: str) -> DataSet:
        """The data set called ``name``; a ``KeyError`` naming close matches otherwise.

        Examples
        --------
        >>> cat = Catalog({"m": ia.model(torch.nn.Linear(2, 2))}, {"d": DataSet("d", torch.rand(1, 2))})
        >>> cat.dataset("d").name
        'd'
        """
        return _get(self.data, name, "data")

    def describe(self) -> dict[str, Any]:
        """Models (with layers and class names) and data sets, as JSON for the page.

        Examples
        --------
        >>> cat = Catalog({"m": ia.model(torch.nn.Linear(2, 2))}, {"d": DataSet("d", torch.rand(1, 2))})
        >>> cat.describe()["models"][0]["name"], cat.describe()["data"][0]["size"]
        ('m', 1)
        """
        models = [
            {"name": name, "layers": list(m.layer_names),
             "classes": None if m.classes is None else list(m.classes)}
            for name, m in self.models.items()
        ]  # fmt: skip
        return {
            "models": models,
            "data": [d.describe() for d in self.data.values()],
            "neuro": {k: v for k, v in self.neuro.items() if isinstance(v, (str, int))},
        }


def check_name(name: Any, kind: str) -> str:
    """``name`` if it is a usable name (letters, digits, ``_``, ``-``; a letter first).

    Examples
    --------
    >>> check_name("cnn", "model")
    'cnn'
    >>> check_name("../x", "data")
    Traceback (most recent call last):
    ValueError: data: '../x' is not a name; use letters, digits, '_' and '-' (a letter or '_' first, at most 64)
    """
    if not isinstance(name, str) or not NAME.match(name):
        raise ValueError(
            f"{kind}: {name!r} is not a name; use letters, digits, '_' and '-' "
            "(a letter or '_' first, at most 64)"
        )
    return name


def _get(items: Mapping[str, Any], name: Any, kind: str) -> Any:
    if not isinstance(name, str) or name not in items:
        known = ", ".join(map(repr, items))
        hint = did_you_mean(name, list(items)) if isinstance(name, str) else ""
        plural = "models" if kind == "model" else "data sets"
        raise KeyError(f"{kind}: no {kind} {name!r} is served; the {plural} are {known}.{hint}")
    return items[name]


def pairs(values: Sequence[str], flag: str) -> dict[str, Path]:
    """``NAME=PATH`` arguments as a dict; a clear error for anything else.

    Examples
    --------
    >>> pairs(["cnn=net.pt"], "--model")
    {'cnn': PosixPath('net.pt')}
    >>> pairs(["net.pt"], "--model")
    Traceback (most recent call last):
    ValueError: --model: expected NAME=PATH; got 'net.pt'
    """
    out: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not path:
            raise ValueError(f"{flag}: expected NAME=PATH; got {value!r}")
        check_name(name, flag)
        if name in out:
            raise ValueError(f"{flag}: {name!r} is given twice")
        out[name] = Path(path)
    return out


def _safe_model(path: Path) -> torch.nn.Module:
    try:
        return load_model(path)  # never trusts a pickle: the page has no --trust-pickle
    except ValueError as error:
        message = str(error)
        if "--trust-pickle" not in message:
            raise
        reason = message.split(". Pass --trust-pickle")[0]
        raise ValueError(
            f"{reason}. ialgebra serve loads no pickles: save the model with "
            "torch.export.save(torch.export.export(model, (example,)), 'model.pt2') or "
            "torch.jit.script(model).save(path) (TorchScript)"
        ) from None


def from_files(models: Sequence[str], data: Sequence[str]) -> tuple[dict, dict]:
    """Load ``NAME=PATH`` model and data files with the command line's safe loaders.

    Returns ``(models, data)``: the models wrapped with ``ia.model`` (named after their
    NAME), in eval mode as saved; the data sets with their labels when the file has them.

    Examples
    --------
    >>> import tempfile, os
    >>> folder = tempfile.mkdtemp()
    >>> torch.jit.script(torch.nn.Linear(4, 3)).save(os.path.join(folder, "m.pt"))
    >>> torch.save({"x": torch.rand(5, 4), "y": torch.tensor([0, 1, 2, 0, 1])}, os.path.join(folder, "d.pt"))
    >>> ms, ds = from_files([f"lin={folder}/m.pt"], [f"d={folder}/d.pt"])
    >>> ms["lin"].name, ds["d"].size, ds["d"].labels.tolist()
    ('lin', 5, [0, 1, 2, 0, 1])
    """
    loaded_models = {
        name: ia.model(_safe_model(path), name=name)
        for name, path in pairs(models, "--model").items()
    }
    loaded_data = {}
    for name, path in pairs(data, "--data").items():
        x, labels = load_tensor(path)
        if not x.is_floating_point():
            raise ValueError(f"--data: {name}: expected floating-point inputs; got {x.dtype}")
        loaded_data[name] = DataSet(name, x, labels, f"from {path.name}")
    return loaded_models, loaded_data
