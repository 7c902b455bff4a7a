"""The page's fixtures: the demo's quick models (trained once per test session into the
session's temporary model cache), a server over them and a test client."""

from __future__ import annotations

import time

import pytest

import algebra as ia
from algebra.web.app import build_app
from algebra.web.defaults import demo_catalog
from algebra.web.server import Server, Settings


@pytest.fixture(scope="session")
def catalog(model_cache):
    # The session's model cache (tests/conftest.py): the demo's tests train the same models.
    with ia.set_options(progress=False):
        return demo_catalog(quick=True, cache=model_cache, models=("cnn", "mlp", "spurious"))


@pytest.fixture(scope="session")
def server(catalog):
    # Room for every tab the tests open, so that none is forgotten under another test.
    server = Server(catalog, Settings(max_tabs=64))
    yield server
    server.close()


@pytest.fixture(scope="session")
def client(server):
    # Each test module skips first when the web extra is missing.
    from starlette.testclient import TestClient

    return TestClient(build_app(server))


@pytest.fixture
def run_query(client):
    """Submit a query and poll it to its end; returns the final snapshot (or the 4xx JSON)."""

    def run(query, tab="tab-test-0001", ids=(0,), data="digits", models=None, inputs=None):
        body = {
            "tab": tab,
            "query": query,
            "models": models or {"f": "cnn"},
            "inputs": inputs or {"x": {"data": data, "ids": list(ids)}},
        }
        response = client.post("/api/query", json=body)
        if response.status_code != 200:
            return response
        job = response.json()["job"]
        end = time.perf_counter() + 120
        while time.perf_counter() < end:
            snap = client.get(f"/api/job/{tab}/{job}").json()
            if snap["state"] not in ("queued", "running"):
                return snap
            time.sleep(0.005)
        raise AssertionError("the job did not end")

    return run


@pytest.fixture
def small_server(catalog):
    """A server with room for two tabs only."""
    server = Server(catalog, Settings(max_tabs=2, session_bytes=2**20))
    yield server
    server.close()
