"""The NeuroInspect view: a class's mistakes, their counterfactual neurons, what those
neurons look for, and a mitigation's before/after table beside its control.

Each is a job of the tab. Counterfactual neurons run as a query (``select neurons of
<layer> from f(x) where mistakes of <class>``) in the tab's session, so they are memoized
like any query; importance, visualisation and mitigation are the eager calls of
``ia.Model`` (``neuron_importance``, ``visualize``, ``mitigate``), one call each: they can
be cancelled before they start, not in the middle.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

import algebra as ia

from .catalog import Catalog, DataSet
from .completion import layer_text
from .failures import WebError
from .jobs import Job
from .png import encode_png, image_pixels
from .server import Server

MAX_NEURONS = 6  # visualised at once
MAX_EDITED = 30  # neurons a mitigation may edit
MAX_STEPS = 1000
MAX_IMAGES = 4
MAX_EPOCHS = 50


def _int(body: dict[str, Any], name: str, default: Any, low: int, high: int) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise WebError(400, f"{name}: expected an integer from {low} to {high}; got {value!r}")
    return value


def _common(server: Server, body: dict[str, Any]) -> tuple[ia.Model, str, int]:
    neuro = server.catalog.neuro
    model = server.catalog.model(body.get("model", neuro.get("model")))
    layer = body.get("layer", neuro.get("layer"))
    if not isinstance(layer, str) or layer not in model.layer_names:
        raise WebError(400, f"layer: {layer!r} is not a layer of the model")
    classes = model.num_classes or 10**6
    cls = _int(body, "cls", neuro.get("cls", 0), 0, classes - 1)
    return model, layer, cls


def _neurons(body: dict[str, Any], most: int) -> list[int]:
    value = body.get("neurons")
    if (
        not isinstance(value, list) or not value or len(value) > most
        or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in value)
    ):  # fmt: skip
        raise WebError(400, f"neurons: expected a list of 1 to {most} neuron indices")
    return value


def _audit(server: Server) -> str:
    """The data set where mistakes are looked for: the catalog's audit split, else the first."""
    return server.catalog.neuro.get("audit") or next(iter(server.catalog.data))


def _start(server: Server, body: dict[str, Any], kind: str, text: str, work: Any) -> dict[str, Any]:
    tab = server.tabs.get(body.get("tab"))
    job = Job(kind, text)
    tab.add(job)
    server.runner.submit(job, work, lambda j: tab.record(j))
    return {"job": job.id}


def counterfactual(server: Server, body: dict[str, Any]) -> dict[str, Any]:
    """Start the counterfactual neurons of class ``cls``'s mistakes on data set ``data``,
    and each ranked neuron's importance for the class.

    Examples
    --------
    >>> from .querying import wait
    >>> server = Server(tiny_catalog())
    >>> job = counterfactual(server, {"tab": "tab-0001", "model": "net", "data": "d", "layer": "1", "cls": 2, "top": 2})["job"]
    >>> done = wait(server, "tab-0001", job)
    >>> done["state"], done["result"]["query"]
    ('done', 'select neurons of 1 from f(x) using counterfactual_neurons(top=2) where mistakes of 2')
    >>> server.close()
    """
    model, layer, cls = _common(server, body)
    data = server.catalog.dataset(body.get("data", _audit(server)))
    top = _int(body, "top", 5, 1, 30)
    text = (f"select neurons of {layer_text(layer)} from f(x) "
            f"using counterfactual_neurons(top={top}) where mistakes of {cls}")  # fmt: skip
    tab = server.tabs.get(body.get("tab"))
    expr = ia.query(text, f=model, x=server.selections.whole(data.name))

    def work(job: Job) -> dict[str, Any]:
        job.step("counterfactual neurons", 0, 2)
        found = expr.compute(session=tab.session)
        job.check()
        job.step("importance", 1, 2)
        importance = model.neuron_importance(cls, data.x, layer=layer)
        ranked = {}
        for kind in ("insufficient", "excessive"):
            ranked[kind] = [
                {"neuron": int(n), "votes": round(float(found.votes.sel(neuron=n, kind=kind)), 2),
                 "importance": round(float(importance.sel(neuron=n)), 4)}
                for n in found.attrs.get(kind, [])
            ]  # fmt: skip
        positions = found["position"].values if "position" in found.coords else []
        return {
            "query": text, "data": data.name, "cls": cls, "layer": layer,
            "class_name": None if model.classes is None else model.classes[cls],
            "mistakes": int(found.attrs.get("mistakes", 0)),
            "flipped_percent": float(found.attrs.get("flipped_percent", 0.0)),
            "samples": [int(p) for p in positions], "ranked": ranked,
        }  # fmt: skip

    return _start(server, body, "neurons", text, work)


def visualize(server: Server, body: dict[str, Any]) -> dict[str, Any]:
    """Start class-conditional visualisations of ``neurons`` (a row of images each).

    Examples
    --------
    >>> from .querying import wait
    >>> server = Server(tiny_catalog())
    >>> with ia.set_options(progress=False):  # no progress bar on the server's terminal
    ...     job = visualize(server, {"tab": "tab-0001", "model": "net", "layer": "1", "cls": 2,
    ...                              "neurons": [0, 3], "steps": 5, "images": 2})["job"]
    ...     done = wait(server, "tab-0001", job)
    >>> done["state"], len(done["result"]["cells"])
    ('done', 4)
    >>> server.close()
    """
    model, layer, cls = _common(server, body)
    neurons = _neurons(body, MAX_NEURONS)
    steps = _int(body, "steps", 150, 1, MAX_STEPS)
    images = _int(body, "images", 2, 1, MAX_IMAGES)
    conditioned = body.get("conditioned", True) is not False
    # Real images give the size, channels and normalisation of the optimised ones.
    example = server.catalog.dataset(body.get("data", _audit(server))).x
    tab = server.tabs.get(body.get("tab"))
    text = f"m.visualize({layer!r}, {neurons}, cls={cls if conditioned else None}, steps={steps}, images={images}, seed=0)"

    def work(job: Job) -> dict[str, Any]:
        job.step("visualize", 0, 1)
        vis = model.visualize(layer, neurons, cls=cls if conditioned else None, steps=steps,
                              images=images, example=example, seed=0)  # fmt: skip
        cells = []
        pictures = vis["images"].values
        masks = vis["masks"].values
        activation = vis["activation"].values
        for i, neuron in enumerate(neurons):
            for k in range(pictures.shape[1]):
                dimmed = image_pixels(pictures[i, k]).astype(np.float64)
                dimmed *= (0.3 + 0.7 * np.clip(masks[i, k], 0, 1))[..., None]
                job.pngs.append(encode_png(np.rint(dimmed).astype(np.uint8)))
                cells.append({"neuron": neuron, "image": k,
                              "activation": round(float(activation[i, k]), 3),
                              "png": f"/api/png/{tab.id}/{job.id}/{len(job.pngs) - 1}.png"})  # fmt: skip
        return {"call": text, "cells": cells, "neurons": neurons, "images": pictures.shape[1]}

    return _start(server, body, "visualize", text, work)


def mitigate(server: Server, body: dict[str, Any]) -> dict[str, Any]:
    """Start a mitigation of class ``cls``'s reliance on ``neurons`` beside its control;
    the table is the test data's accuracy (overall, worst class, the class, worst group).

    Examples
    --------
    >>> from .querying import wait
    >>> server = Server(tiny_catalog())
    >>> job = mitigate(server, {"tab": "tab-0001", "model": "net", "layer": "1", "cls": 2, "neurons": [0],
    ...                         "train": "d", "val": "d", "test": "d", "epochs": 2})["job"]
    >>> done = wait(server, "tab-0001", job)
    >>> [row["version"] for row in done["result"]["rows"]]
    ['before', 'after', 'control']
    >>> server.close()
    """
    model, layer, cls = _common(server, body)
    neurons = _neurons(body, MAX_EDITED)
    neuro = server.catalog.neuro
    sets = {}
    for role in ("train", "val", "test"):
        data = server.catalog.dataset(body.get(role, neuro.get(role)))
        if data.labels is None:
            raise WebError(400, f"{role}: data set {data.name!r} has no labels")
        sets[role] = data
    epochs = _int(body, "epochs", 20, 1, MAX_EPOCHS)
    train, val, test = sets["train"], sets["val"], sets["test"]
    text = (f"m.mitigate({neurons}, {cls}, {train.name}, val_data={val.name}, layer={layer!r}, "
            f"epochs={epochs}, control=True).evaluate({test.name})")  # fmt: skip

    def work(job: Job) -> dict[str, Any]:
        job.step("retrain the decision layer", 0, 2)
        fix = model.mitigate(neurons, cls, (train.x, train.labels), val_data=(val.x, val.labels),
                             layer=layer, epochs=epochs, control=True)  # fmt: skip
        job.check()
        job.step("evaluate", 1, 2)
        report = fix.evaluate((test.x, test.labels), groups=test.groups)
        rows = []
        for version in report.version.values.tolist():
            row = {"version": version,
                   "overall": float(report.overall.sel(version=version)),
                   "worst_class": float(report.worst_class.sel(version=version)),
                   "cls": float(report.per_class.sel(version=version).isel({report.per_class.dims[-1]: cls}))}  # fmt: skip
            if "worst_group" in report:
                row["worst_group"] = float(report.worst_group.sel(version=version))
            rows.append(row)
        return {"call": text, "rows": rows, "cls": cls, "test": test.name,
                "groups": "worst_group" in report}  # fmt: skip

    return _start(server, body, "mitigate", text, work)


def tiny_catalog() -> Catalog:
    """A four-class CNN on random images: what the examples of this module run on.

    Examples
    --------
    >>> sorted(tiny_catalog().models)
    ['net']
    """
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                              torch.nn.Linear(8, 4)).eval()  # fmt: skip
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(96, 3, 8, 8, generator=g), torch.randint(0, 4, (96,), generator=g)
    data = DataSet("d", x, y)
    return Catalog({"net": ia.model(net, name="net", classes=["a", "b", "c", "d"])}, {"d": data})
