"""HTTP workflows for tests/integration/test_http.py.

Each entry takes a JSON object; `base` is the test server's root URL.
"""

from __future__ import annotations

from typing import Any

import durable
from durable import http


@durable.workflow
def roundtrip(args: dict[str, Any]) -> dict[str, Any]:
    """Every verb and body kind against /echo, which answers with what it received."""
    base = args["base"]
    got = http.get(
        f"{base}/echo?fixed=1",
        params={"q": "a b&c", "n": 2, "flag": True, "multi": ["x", "y"]},
        headers={"X-Token": "t0k", "Accept": "application/json"},
    )
    posted = http.post(
        f"{base}/echo",
        json={"hello": "wörld", "n": [1, 2]},
        headers=[("X-Twice", "a"), ("X-Twice", "b")],
    )
    put = http.put(f"{base}/echo", content="plain text")
    patched = http.patch(f"{base}/echo", data={"k": "v w"})
    deleted = http.delete(f"{base}/echo", content=b"\x00\xff")
    missing = http.get(f"{base}/status/404")
    try:
        missing.raise_for_status()
        raised: list[Any] | None = None
    except http.HTTPStatusError as exc:
        is_http_error = isinstance(exc, http.HTTPError)
        raised = [type(exc).__name__, exc.response.status, str(exc), is_http_error]
    binary = http.get(f"{base}/bytes")
    gzipped = http.get(f"{base}/gzip")
    return {
        "get": got.json(),
        "get_status": [got.status, got.status_code, got.ok, got.reason],
        "get_content_type": [got.headers["CONTENT-TYPE"], "Content-Type" in got.headers],
        "get_multi": got.headers.get_list("x-multi"),
        "get_multi_joined": got.headers["X-Multi"],
        "post": posted.json(),
        "put": put.json(),
        "patch": patched.json(),
        "delete": deleted.json(),
        "missing": [missing.status, missing.ok, missing.text],
        "raised": raised,
        "binary": list(binary.content),
        "gzip": gzipped.text,
    }


@durable.workflow
def errors(args: dict[str, Any]) -> dict[str, Any]:
    """Each case is [name, url, timeout]; report how each request ended."""
    out: dict[str, Any] = {}
    for name, url, timeout in args["cases"]:
        try:
            response = http.get(url, timeout=timeout)
            out[name] = ["ok", response.status, len(response.content)]
        except http.ResponseTooLarge as exc:
            out[name] = [type(exc).__name__, str(exc), exc.limit]
        except http.HTTPError as exc:
            out[name] = [type(exc).__name__, str(exc), isinstance(exc, http.ConnectError)]
    print("errors handled")
    return out


@durable.workflow
def once(args: dict[str, Any]) -> Any:
    """One POST, then output: the effect whose repetition the crash tests count."""
    response = http.post(args["url"], json={"task": durable.info().id})
    print("after request", response.status)
    return response.json()


@durable.step
def fetch_in_step(url: str) -> Any:
    return http.get(url).json()


@durable.workflow
def stepped(args: dict[str, Any]) -> Any:
    """A request inside a step: the step's record covers it."""
    return fetch_in_step(args["url"])
