"""The NeuroInspect view's endpoints on the demo's spurious-mark model (quick sizes)."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("starlette", reason="the page needs the web extra: pip install 'ialgebra[web]'")
pytest.importorskip("httpx", reason="Starlette's test client needs httpx")

import algebra as ia

TAB = "tab-neuro-001"


def finish(client, path, body):
    response = client.post(path, json={"tab": TAB, **body})
    assert response.status_code == 200, response.text
    job = response.json()["job"]
    while True:
        snap = client.get(f"/api/job/{TAB}/{job}").json()
        if snap["state"] not in ("queued", "running"):
            return snap
        time.sleep(0.01)


@pytest.fixture(scope="module")
def found(client):
    with ia.set_options(progress=False):
        return finish(
            client,
            "/api/neuro/neurons",
            {"model": "spurious", "data": "audit", "layer": "block4", "cls": 8},
        )


def test_counterfactual_neurons_of_a_class_mistakes(found, catalog):
    assert found["state"] == "done", found
    result = found["result"]
    assert result["query"] == (
        "select neurons of block4 from f(x) using counterfactual_neurons(top=5) where mistakes of 8"
    )
    audit = catalog.dataset("audit")
    assert result["mistakes"] == len(result["samples"]) > 0
    assert all(int(audit.labels[i]) == 8 for i in result["samples"])
    top = result["ranked"]["insufficient"]
    assert top and all(row["votes"] > 3 for row in top) and "importance" in top[0]
    assert [r["votes"] for r in top] == sorted((r["votes"] for r in top), reverse=True)


def test_visualisation_of_chosen_neurons(client, found):
    neurons = [row["neuron"] for row in found["result"]["ranked"]["insufficient"][:2]]
    with ia.set_options(progress=False):
        snap = finish(client, "/api/neuro/visualize",
                      {"model": "spurious", "layer": "block4", "cls": 8, "neurons": neurons,
                       "steps": 5, "images": 2, "data": "audit"})  # fmt: skip
    assert snap["state"] == "done", snap
    cells = snap["result"]["cells"]
    assert [(c["neuron"], c["image"]) for c in cells] == [(n, k) for n in neurons for k in range(2)]
    assert client.get(cells[0]["png"]).headers["content-type"] == "image/png"


def test_mitigation_reports_before_after_and_control(client, found):
    neurons = [row["neuron"] for row in found["result"]["ranked"]["insufficient"]]
    snap = finish(client, "/api/neuro/mitigate",
                  {"model": "spurious", "layer": "block4", "cls": 8, "neurons": neurons, "epochs": 2})  # fmt: skip
    assert snap["state"] == "done", snap
    rows = snap["result"]["rows"]
    assert [r["version"] for r in rows] == ["before", "after", "control"]
    assert snap["result"]["test"] == "spurious_test" and snap["result"]["groups"]
    for row in rows:  # groups split the classes (class x mark), so the worst group is lower
        assert 0 <= row["worst_group"] <= row["worst_class"] <= min(row["overall"], row["cls"]) <= 1


def test_bad_neuro_requests_are_refused_with_the_argument_named(client):
    response = client.post("/api/neuro/visualize", json={"tab": TAB, "model": "spurious", "layer": "block4",
                                                         "cls": 8, "neurons": list(range(7))})  # fmt: skip
    assert response.status_code == 400 and response.json()["error"]["message"].startswith(
        "neurons:"
    )
    response = client.post(
        "/api/neuro/neurons", json={"tab": TAB, "model": "spurious", "layer": "blok4"}
    )
    assert response.json()["error"]["message"].startswith("layer:")
    response = client.post("/api/neuro/neurons", json={"tab": TAB, "model": "spurious", "cls": 12})
    assert response.json()["error"]["message"].startswith("cls:")


def test_a_neurons_query_in_the_editor_votes_over_all_its_samples(client, catalog, run_query):
    # 64 samples: more than a chunk, but counterfactual neurons must see every mistake at once.
    ids = list(range(64))
    snap = run_query("select neurons of block4 from f(x) where mistakes of 8", tab="tab-neuro-002",
                     ids=ids, data="audit", models={"f": "spurious"})  # fmt: skip
    assert snap["state"] == "done", snap
    audit = catalog.dataset("audit")
    q = catalog.model("spurious").on(audit.x[ids], labels=audit.labels[ids], ids=ids)
    want = q.mistakes(8).counterfactual_neurons(8, layer="block4").compute()
    got = snap["result"]["neurons"]
    assert got["mistakes"] == want.attrs["mistakes"]
    assert [r["neuron"] for r in got["ranked"]["insufficient"]] == list(want.attrs["insufficient"])
