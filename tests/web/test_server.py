"""The page's server through Starlette's test client: queries, the memo, drill-down,
errors as JSON, limits, cancel and progress."""

from __future__ import annotations

import struct
import time
import zlib

import numpy as np
import pytest

pytest.importorskip("starlette", reason="the page needs the web extra: pip install 'ialgebra[web]'")
pytest.importorskip("httpx", reason="Starlette's test client needs httpx")

import algebra as ia


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def png_pixels(data: bytes) -> np.ndarray:
    """Decode our own PNGs (8-bit RGBA, filter 0, one IDAT) to check what they show."""
    width, height = png_size(data)
    length = struct.unpack(">I", data[33:37])[0]
    raw = zlib.decompress(data[41 : 41 + length])
    rows = np.frombuffer(raw, np.uint8).reshape(height, 1 + 4 * width)
    assert (rows[:, 0] == 0).all()
    return rows[:, 1:].reshape(height, width, 4)


def test_the_page_and_its_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for script in ("api.js", "editor.js", "results.js", "app.js", "neuro.js"):
        assert f"/static/{script}" in page.text
        assert client.get(f"/static/{script}").status_code == 200
    assert client.get("/static/style.css").status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]


def test_catalog_lists_models_layers_data_and_methods(client):
    cat = client.get("/api/catalog").json()
    names = [m["name"] for m in cat["models"]]
    assert names == ["cnn", "mlp", "spurious"]
    assert "block4" in cat["models"][0]["layers"]
    assert cat["models"][0]["classes"] == [str(d) for d in range(10)]
    assert {d["name"] for d in cat["data"]} >= {"digits", "audit"}
    assert "steps" in cat["methods"]["integrated_gradients"]
    assert cat["neuro"]["model"] == "spurious" and cat["neuro"]["cls"] == 8


def test_a_query_returns_heat_maps_over_its_images(client, run_query):
    snap = run_query("select * from f(x) using saliency target all", ids=[3, 5])
    assert snap["state"] == "done", snap
    result = snap["result"]
    assert result["grid"]["rows"] == 2 and result["grid"]["cols"] == 10
    first = result["panels"][0]
    assert first["sample"] == 3 and first["image"] == "/api/data/digits/3.png"
    assert (first["target"], first["class_name"]) == (0, "0")
    assert png_size(client.get(first["image"]).content) == (32, 32)
    heat = client.get(first["png"])
    assert heat.headers["content-type"] == "image/png"
    assert png_pixels(heat.content).shape == (32, 32, 4)
    assert result["plan"].startswith("plan:")


def test_a_repeated_query_is_answered_from_the_tab_memo(run_query):
    text = "select * from f(x) using integrated_gradients(steps=8)"
    first = run_query(text, tab="tab-memo-0001", ids=[7])["result"]["stats"]
    again = run_query(text, tab="tab-memo-0001", ids=[7])
    assert (first["hits"], first["misses"]) == (0, 1)
    assert (again["result"]["stats"]["hits"], again["result"]["stats"]["misses"]) == (1, 0)
    assert "already computed" in again["result"]["plan"] or "memo" in again["result"]["plan"]
    other_tab = run_query(text, tab="tab-memo-0002", ids=[7])["result"]["stats"]
    assert other_tab["misses"] == 1  # each tab has its own session


def test_a_drag_refines_the_query_and_zeroes_outside_the_window(client, server, run_query):
    text = "select * from f(x) using shapley(samples=4, seed=0)"
    refined = client.post("/api/rewrite", json={"query": text, "window": [4, 20, 8, 24]}).json()
    assert refined["query"] == text + " where [4, 20, 8, 24]"
    deeper = client.post(
        "/api/rewrite", json={"query": refined["query"], "window": [0, 12, 12, 30]}
    )
    assert deeper.json()["query"].endswith("where [4, 20, 8, 24] and [4, 12, 12, 24]")
    snap = run_query(deeper.json()["query"], tab="tab-drill-001", ids=[1])
    assert snap["state"] == "done", snap
    assert snap["result"]["grid"]["window"] == [4, 12, 12, 24]
    result, _ = server.tabs.get("tab-drill-001").job(snap["id"]).kept
    values = result.sum("channel").values[0]
    inside = np.zeros((32, 32), bool)
    inside[4:12, 12:24] = True
    assert (values[~inside] == 0).all() and (values[inside] != 0).any()
    alpha = png_pixels(client.get(snap["result"]["panels"][0]["png"]).content)[..., 3]
    assert alpha[~inside].max() < alpha[inside].max()


def test_a_syntax_error_is_json_with_its_line_and_column(client, run_query):
    response = run_query("select * from f(x)\nwhere prd != label")
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["kind"], error["line"], error["column"]) == ("syntax", 2, 7)
    assert "Did you mean 'pred'?" in error["hint"]
    assert "Traceback" not in response.text
    check = client.post("/api/check", json={"query": "select * form f(x)"}).json()
    assert check["ok"] is False and check["error"]["column"] == 10


def test_a_binding_error_points_at_the_text(run_query):
    response = run_query("select conv9 from f(x) using saliency")
    error = response.json()["error"]
    assert response.status_code == 400 and error["kind"] == "query"
    assert (error["line"], error["column"]) == (1, 8) and "conv9" in error["reason"]
    unbound = run_query("select * from g(x)").json()["error"]
    assert "unknown models 'g'" in unbound["reason"]


def test_a_failure_while_computing_is_the_jobs_error_not_a_500(client, run_query):
    # Sample 0 is predicted right: class 0 has no mistakes among the samples bound.
    snap = run_query("select neurons of block4 from f(x) where mistakes of 0", ids=[0])
    assert snap["state"] == "error"
    assert snap["error"]["message"].startswith("cls: no mistakes for class 0")
    assert "Traceback" not in str(snap)


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (b"x" * 70_000, 413, "larger than"),
        (b"not json", 400, "not JSON"),
        (b"[1, 2]", 400, "JSON object"),
    ],
)
def test_request_bodies_are_limited(client, body, status, says):
    response = client.post("/api/query", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status and says in response.json()["error"]["message"]


def test_query_length_tabs_and_samples_are_checked(client, run_query):
    long = run_query("select * from f(x) " + "-" * 5000)
    assert long.status_code == 413 and "at most 4000" in long.json()["error"]["message"]
    bad_tab = run_query("select * from f(x)", tab="../../etc")
    assert bad_tab.status_code == 400 and "tab id" in bad_tab.json()["error"]["message"]
    too_many = run_query("select * from f(x)", ids=range(65))
    assert too_many.status_code == 413
    outside = run_query("select * from f(x)", ids=[540])
    assert "not a sample index" in outside.json()["error"]["message"]
    unknown = run_query("select * from f(x)", models={"f": "resnet"})
    assert (
        "Did you mean" in unknown.json()["error"]["message"]
        or "no model" in unknown.json()["error"]["message"]
    )


def test_long_queries_report_progress_in_chunks_and_can_be_cancelled(client, server):
    tab = "tab-cancel-01"
    body = {"tab": tab, "query": "select * from f(x) using shapley(samples=5)",
            "models": {"f": "cnn"}, "inputs": {"x": {"data": "digits", "ids": list(range(64))}}}  # fmt: skip
    started = client.post("/api/query", json=body).json()
    assert started["chunks"] == 8
    job = server.tabs.get(tab).job(started["job"])
    while job.state == "queued" or (job.state == "running" and job.done < 1):
        time.sleep(0.002)
    cancel = client.post("/api/cancel", json={"tab": tab, "job": started["job"]})
    assert cancel.status_code == 200
    while job.state == "running":
        time.sleep(0.002)
    snap = client.get(f"/api/job/{tab}/{started['job']}").json()
    assert snap["state"] == "cancelled"
    assert snap["progress"]["total"] == 8 and snap["progress"]["done"] < 8


def test_samples_are_filtered_by_the_where_clause(client, catalog):
    body = {"data": "digits", "model": "cnn", "limit": 500}
    everything = client.post("/api/samples", json=body).json()
    assert everything["matched"] == 540 and len(everything["items"]) == 200  # one page at most
    wrong = client.post(
        "/api/samples", json={**body, "query": "select * from f(x) where not correct"}
    ).json()
    x, y = catalog.dataset("digits").x, catalog.dataset("digits").labels
    with ia.set_options(progress=False):
        pred = ia.model(catalog.model("cnn").module).on(x).saliency("pred").compute()["pred"].values
    assert wrong["matched"] == int((pred != y.numpy()).sum()) and wrong["where"] == "not correct"
    assert all(item["correct"] is False for item in wrong["items"])


def test_completion_offers_layers_methods_and_bound_names(client):
    def options(text, **extra):
        body = {
            "query": text,
            "cursor": len(text),
            "models": {"f": "cnn"},
            "inputs": ["x", "x'"],
            **extra,
        }
        return client.post("/api/complete", json=body).json()["options"]

    assert "block2.0" in options("select block2")
    assert options("select * from f(x) using integ") == ["integrated_gradients"]
    assert options("select * from f(") == ["x", "x'"]
    assert options("select * from ") == ["f"]


def test_history_has_timings_and_memo_hits(client, run_query):
    tab = "tab-history-1"
    run_query("select * from f(x) using saliency", tab=tab, ids=[2])
    run_query("select * from f(x) using saliency", tab=tab, ids=[2])
    history = client.get(f"/api/history/{tab}").json()
    latest, first = history["history"][:2]
    assert latest["hits"] == 1 and first["misses"] == 1 and latest["ms"] > 0
    assert history["memo"]["results"] == 1


def test_tabs_are_bounded_and_their_memos_too(small_server):
    from algebra.web import querying

    ids = ["tab-bound-01", "tab-bound-02", "tab-bound-03"]
    for tab in ids:
        body = {"tab": tab, "query": "select * from f(x) using saliency", "models": {"f": "cnn"},
                "inputs": {"x": {"data": "digits", "ids": [0]}}}  # fmt: skip
        querying.wait(small_server, tab, querying.submit(small_server, body)["job"])
    assert small_server.tabs.ids() == ids[1:]
    assert small_server.tabs.get(ids[2]).session.max_bytes == 2**20
    assert small_server.history(ids[0])["history"] == []  # forgotten, opened anew


def test_the_host_header_is_checked(server):
    from starlette.testclient import TestClient

    from algebra.web.app import build_app

    guarded = TestClient(
        build_app(server, hosts=["127.0.0.1", "localhost"]), base_url="http://127.0.0.1"
    )
    assert guarded.get("/api/catalog").status_code == 200
    assert guarded.get("/api/catalog", headers={"host": "evil.example"}).status_code == 400


def test_the_figure_is_the_results_plot(client, run_query):
    snap = run_query("select * from f(x) using saliency", ids=[4])
    figure = client.get(f"/api/figure/tab-test-0001/{snap['id']}.png")
    assert figure.headers["content-type"] == "image/png" and png_size(figure.content)[0] > 100
