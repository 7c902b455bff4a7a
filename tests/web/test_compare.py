"""Two tabs at once, and the comparisons the page offers: join and anti-join of a second
sample, and the anti-join of a second model."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

pytest.importorskip("starlette", reason="the page needs the web extra: pip install 'ialgebra[web]'")
pytest.importorskip("httpx", reason="Starlette's test client needs httpx")

import algebra as ia


def expected(catalog, text, ids, model="cnn"):
    data = catalog.dataset("digits")
    q = catalog.model(model).on(data.x[list(ids)], labels=data.labels[list(ids)], ids=list(ids))
    with ia.set_options(progress=False):
        return ia.query(text, f=catalog.model(model), x=q).compute()


def test_two_tabs_querying_at_once_both_get_their_answers(client, server, catalog):
    # Different queries, models and samples in two tabs, submitted from two threads at once;
    # each result equals the same query computed alone.
    work = {
        "tab-thread-aa": (
            "select * from f(x) using integrated_gradients(steps=16)",
            "cnn",
            [5, 6, 7],
        ),
        "tab-thread-bb": ("select fc1 from f(x) using saliency target all", "mlp", [8, 9]),
    }
    snaps, barrier = {}, threading.Barrier(len(work))

    def tab(name):
        text, model, ids = work[name]
        body = {"tab": name, "query": text, "models": {"f": model},
                "inputs": {"x": {"data": "digits", "ids": ids}}}  # fmt: skip
        barrier.wait()
        job = client.post("/api/query", json=body).json()["job"]
        while True:
            snap = client.get(f"/api/job/{name}/{job}").json()
            if snap["state"] not in ("queued", "running"):
                snaps[name] = snap
                return
            time.sleep(0.003)

    threads = [threading.Thread(target=tab, args=(name,)) for name in work]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for name, (text, model, ids) in work.items():
        assert snaps[name]["state"] == "done", snaps[name]
        got, _ = server.tabs.get(name).job(snaps[name]["id"]).kept
        want = expected(catalog, text, ids, model)
        assert got.dims == want.dims
        np.testing.assert_allclose(got.values, want.values, rtol=1e-5, atol=1e-6)
        assert got["sample"].values.tolist() == ids


def test_a_second_sample_offers_join_and_anti_join(client, server, run_query):
    base = "select * from f(x) using integrated_gradients(steps=8)"
    inputs = {"x": {"data": "digits", "ids": [1]}, "x'": {"data": "digits", "ids": [2]}}
    anti = client.post(
        "/api/rewrite", json={"query": base, "compare": "anti", "inputs": "x'"}
    ).json()
    assert (
        anti["query"]
        == "select * from f(x) left join (select * from f(x')) using integrated_gradients(steps=8)"
    )
    snap = run_query(anti["query"], tab="tab-compare-1", inputs=inputs)
    assert snap["state"] == "done", snap
    panels = snap["result"]["panels"]
    assert [(p["side"], p["sample"], p["image"]) for p in panels] == [
        ("left", 1, "/api/data/digits/1.png"),
        ("right", 2, "/api/data/digits/2.png"),
    ]
    join = client.post(
        "/api/rewrite", json={"query": base, "compare": "join", "inputs": "x'"}
    ).json()
    joined = run_query(join["query"], tab="tab-compare-1", inputs=inputs)
    assert joined["state"] == "done" and joined["result"]["grid"]["name"] == "join"


def test_a_second_model_offers_the_model_anti_join(client, run_query):
    base = "select * from f(x) using shapley(samples=2, seed=0)"
    anti = client.post("/api/rewrite", json={"query": base, "compare": "anti", "model": "g"}).json()
    snap = run_query(anti["query"], tab="tab-compare-2", models={"f": "cnn", "g": "mlp"})
    assert snap["state"] == "done", snap
    assert snap["result"]["attrs"]["antijoin"] == "models 'cnn' - 'mlp'"
    assert "side" not in snap["result"]["grid"]["dims"]
