"""The ASGI app: routes from URLs to the server's endpoints, JSON bodies read within a size
limit, errors as JSON, the page's files, and serving with uvicorn.

Starlette and uvicorn (``pip install 'ialgebra[web]'``) are imported here, when an app is
built or served, and nowhere else.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import neuro, querying
from .failures import WebError, error_payload
from .server import Server

STATIC = Path(__file__).resolve().parent / "static"
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
    "frame-ancestors 'none'",
}


def missing_extra() -> str | None:
    """Why the app cannot be built here (Starlette or uvicorn missing), or ``None``.

    Examples
    --------
    >>> missing_extra() is None or "ialgebra[web]" in missing_extra()
    True
    """
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as error:
        return f"the page needs Starlette and uvicorn: pip install 'ialgebra[web]' ({error})"
    return None


def build_app(server: Server, hosts: Sequence[str] | None = None) -> Any:
    """The Starlette app of ``server``; ``hosts`` are the Host names it answers (a guard
    against DNS rebinding; ``None`` answers any, as the test client needs).

    Parameters
    ----------
    server : Server
        The state and endpoints.
    hosts : sequence of str, optional
        Allowed ``Host`` headers.

    Returns
    -------
    starlette.applications.Starlette

    Examples
    --------
    >>> from .neuro import tiny_catalog
    >>> server = Server(tiny_catalog())
    >>> app = build_app(server, hosts=["127.0.0.1", "localhost"])
    >>> sorted(r.path for r in app.routes if r.path.startswith("/api/neuro"))
    ['/api/neuro/mitigate', '/api/neuro/neurons', '/api/neuro/visualize']
    >>> server.close()
    """
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    limit = server.settings.max_body

    def failure(error: BaseException) -> Any:
        status = error.status if isinstance(error, WebError) else 400
        return JSONResponse({"error": error_payload(error)}, status_code=status, headers=HEADERS)

    async def body_of(request: Request) -> dict[str, Any]:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            raise WebError(413, f"request: the body is larger than {limit} bytes")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise WebError(413, f"request: the body is larger than {limit} bytes")
            chunks.append(chunk)
        try:
            body = json.loads(b"".join(chunks) or b"{}")
        except (ValueError, UnicodeDecodeError):
            raise WebError(400, "request: the body is not JSON") from None
        if not isinstance(body, dict):
            raise WebError(400, "request: expected a JSON object")
        return body

    def post(call: Callable[[dict[str, Any]], Any]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Any:
            try:
                body = await body_of(request)
                return JSONResponse(await run_in_threadpool(call, body), headers=HEADERS)
            except Exception as error:
                return failure(error)

        return endpoint

    def get(call: Callable[..., Any], png: bool = False) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Any:
            try:
                out = await run_in_threadpool(call, **request.path_params)
            except Exception as error:
                return failure(error)
            if png:
                return Response(
                    out,
                    media_type="image/png",
                    headers={**HEADERS, "Cache-Control": "private, max-age=3600"},
                )
            return JSONResponse(out, headers={**HEADERS, "Cache-Control": "no-store"})

        return endpoint

    async def index(request: Request) -> Any:
        return FileResponse(STATIC / "index.html", headers=HEADERS)

    routes = [
        Route("/", index),
        Route("/api/catalog", get(server.describe)),
        Route("/api/samples", post(server.samples), methods=["POST"]),
        Route("/api/data/{data}/{index:int}.png", get(server.thumbnail, png=True)),
        Route(
            "/api/colourbar/{signed:int}.png",
            get(lambda signed: Server.colour_bar(bool(signed)), png=True),
        ),
        Route("/api/check", post(server.check), methods=["POST"]),
        Route("/api/complete", post(server.complete), methods=["POST"]),
        Route("/api/rewrite", post(server.rewrite), methods=["POST"]),
        Route("/api/query", post(lambda body: querying.submit(server, body)), methods=["POST"]),
        Route("/api/cancel", post(lambda body: querying.cancel(server, body)), methods=["POST"]),
        Route("/api/job/{tab}/{job}", get(lambda tab, job: querying.status(server, tab, job))),
        Route(
            "/api/png/{tab}/{job}/{index:int}.png",
            get(lambda tab, job, index: querying.png(server, tab, job, index), png=True),
        ),
        Route(
            "/api/figure/{tab}/{job}.png",
            get(lambda tab, job: querying.figure(server, tab, job), png=True),
        ),
        Route("/api/history/{tab}", get(server.history)),
        Route(
            "/api/neuro/neurons", post(lambda b: neuro.counterfactual(server, b)), methods=["POST"]
        ),
        Route("/api/neuro/visualize", post(lambda b: neuro.visualize(server, b)), methods=["POST"]),
        Route("/api/neuro/mitigate", post(lambda b: neuro.mitigate(server, b)), methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    middleware = (
        [] if hosts is None else [Middleware(TrustedHostMiddleware, allowed_hosts=list(hosts))]
    )
    return Starlette(routes=routes, middleware=middleware)


def serve(server: Server, host: str = "127.0.0.1", port: int = 8765) -> None:  # pragma: no cover
    """Serve the page with uvicorn until interrupted (answering ``host`` and the loopback
    names only, unless ``host`` is a wildcard address).

    Examples
    --------
    >>> callable(serve)  # serving blocks; see ``ialgebra serve``
    True
    """
    import uvicorn

    hosts = None if host in ("0.0.0.0", "::") else sorted({host, "127.0.0.1", "localhost", "[::1]"})
    try:
        uvicorn.run(build_app(server, hosts), host=host, port=port, log_level="warning")
    finally:
        server.close()
