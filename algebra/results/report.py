"""The accuracy report of a mitigation: before, after and the control, as an ``xarray.Dataset``."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from ..ir.model import ModelInfo
from ..kernels.accuracy import Accuracy

#: The decision layers a report compares, in order (``control`` only when trained).
VERSIONS = ("before", "after", "control")


def accuracy_report(
    versions: dict[str, Accuracy], model: ModelInfo, attrs: dict[str, Any]
) -> xr.Dataset:
    """Accuracies (fractions in [0, 1]) by ``version`` (``before``, ``after``, ``control``):
    ``overall``, ``per_class [version, class]`` (NaN for a class absent from the data),
    ``worst_class`` and, when groups were given, ``per_group [version, group]`` and
    ``worst_group``. ``attrs`` say what was edited and how.

    Examples
    --------
    >>> import torch
    >>> from algebra.ir.node import Ref
    >>> before = Accuracy(0.5, torch.tensor([1.0, 0.0]), {0: 0.5, 1: 0.5})
    >>> after = Accuracy(0.75, torch.tensor([1.0, 0.5]), {0: 1.0, 1: 0.5})
    >>> info = ModelInfo(Ref(None, "m"), "net", ("a", "b"), ())
    >>> r = accuracy_report({"before": before, "after": after}, info, {"cls": 1})
    >>> r.worst_class.values.tolist(), r.per_group.dims, r.class_name.values.tolist()
    ([0.0, 0.5], ('version', 'group'), ['a', 'b'])
    """
    names = [v for v in VERSIONS if v in versions]
    accs = [versions[v] for v in names]
    classes = len(accs[0].per_class)
    data: dict[str, Any] = {
        "overall": (("version",), np.array([a.overall for a in accs])),
        "per_class": (("version", "class"), np.stack([a.per_class.numpy() for a in accs])),
        "worst_class": (("version",), np.array([a.worst_class for a in accs])),
    }
    coords: dict[str, Any] = {"version": names, "class": np.arange(classes)}
    if model.classes is not None and len(model.classes) == classes:
        coords["class_name"] = ("class", np.asarray(model.classes, dtype=object))
    if accs[0].per_group:
        groups = sorted(accs[0].per_group)
        data["per_group"] = (
            ("version", "group"),
            np.array([[a.per_group[g] for g in groups] for a in accs]),
        )
        data["worst_group"] = (("version",), np.array([a.worst_group for a in accs]))
        coords["group"] = np.asarray(groups)
    return xr.Dataset(
        data, coords=coords, attrs={"units": "fraction of samples classified correctly", **attrs}
    )
