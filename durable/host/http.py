"""The `durable:core/http` host functions: outbound HTTP, at least once, recorded.

`fetch` goes through `AttemptContext.effect`: the outcome of a request (the response,
or a typed error such as a timeout) is recorded as JSON and committed before the guest
sees it, and a replay gets it back without touching the network. A crash between the
request and that commit sends the request again on replay: at least once.

The event's label names the request for people: `http GET https://host/path`, without
the query string, fragment or user info, which may carry secrets and are often long.
The digest (SHA-256 over the method, the whole URL, the headers and the body) is what
tells a different request apart: a replay that asks for something else fails with a
`NondeterminismError`. The timeout is not part of either: it does not change what is
asked for.

One `httpx.Client` serves the whole process (it is thread-safe and pools connections);
guests call in from worker threads and each call blocks that thread until it is done.
httpx is imported on first use: it adds about 30 ms to start-up, which workers whose
workflows make no request should not pay.
"""

from __future__ import annotations

import atexit
import base64
import dataclasses
import hashlib
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from wasmtime import component as wc

from durable.core import ops
from durable.host._wit import add_funcs
from durable.host.config import HostConfig
from durable.host.context import AttemptContext
from durable.host.world import DURABLE_VERSION

if TYPE_CHECKING:
    import httpx

#: Sent unless the workflow sets its own User-Agent.
USER_AGENT = "durable"
_LABEL_PATH_MAX = 200  # characters of the path kept in a label (the digest has it all)

Payload = dict[str, Any]  # a recorded outcome: {"ok": {...}} or {"error": {...}}


@dataclass(frozen=True, slots=True)
class Request:
    """A guest's request, as the host sees it."""

    method: str
    url: str
    headers: list[tuple[str, str]]
    body: bytes | None
    timeout_ms: int | None

    @classmethod
    def from_wit(cls, rec: Any) -> Request:
        """Read the WIT `request` record (wasmtime hands records over with WIT names)."""
        body = rec.body
        return cls(
            method=rec.method,
            url=rec.url,
            headers=[(str(k), str(v)) for k, v in rec.headers],
            body=None if body is None else bytes(body),
            timeout_ms=getattr(rec, "timeout-ms"),
        )

    def label(self) -> str:
        """`http METHOD scheme://host[:port]/path`: readable, and free of query secrets."""
        return f"{ops.HTTP_PREFIX}{self.method} {_display_url(self.url)}"

    def digest(self) -> str:
        """A short hash of everything that makes the request what it is."""
        h = hashlib.sha256()
        h.update(json.dumps([self.method, self.url, self.headers]).encode())
        # Length-prefixed, so that no body can collide with "no body".
        if self.body is None:
            h.update(b"\0-")
        else:
            h.update(b"\0+%d:" % len(self.body))
            h.update(self.body)
        return h.hexdigest()[:16]


#: At most one function that performs every request of this process in place of
#: `perform_request` (set by `durable.testing.check`, in the process of a check only).
REQUEST_HOOK: list[Callable[[Request, HostConfig], Payload]] = []


def define_http(root: wc.LinkerInstance, current: Callable[[], AttemptContext]) -> None:
    """Define `durable:core/http` on the linker root."""

    def fetch(_store: object, rec: Any) -> wc.Record | wc.Variant:
        ctx = current()
        request = Request.from_wit(rec)

        def perform() -> str:
            if REQUEST_HOOK:  # `durable check`: counts requests, may answer them itself
                return json.dumps(REQUEST_HOOK[0](request, ctx.config))
            if ctx.trace is None:
                return json.dumps(perform_request(shared_client(), request, ctx.config))
            with ctx.trace.http(request.method, request.url) as (span, context_headers):
                # Sent, not recorded: the digest above is of the guest's own request.
                sent = _with_trace_context(request, context_headers)
                payload = perform_request(shared_client(), sent, ctx.config)
                if "ok" in payload:
                    span.set_attribute("http.response.status_code", payload["ok"]["status"])
                else:
                    span.set_attribute("error.type", payload["error"]["kind"])
                return json.dumps(payload)

        payload = ctx.effect(request.label(), request.digest(), perform)
        return to_wit(json.loads(payload))

    with root.add_instance(f"durable:core/http@{DURABLE_VERSION}") as inst:
        add_funcs(inst, current, {"fetch": fetch})


def _with_trace_context(request: Request, headers: list[tuple[str, str]]) -> Request:
    """`request` with the trace context headers, unless the guest set its own."""
    own = {name.lower() for name, _ in request.headers}
    extra = [(k, v) for k, v in headers if k.lower() not in own]
    return dataclasses.replace(request, headers=[*request.headers, *extra])


# -- the shared client ---------------------------------------------------------------------

_client: httpx.Client | None = None
_client_lock = threading.Lock()


def shared_client() -> httpx.Client:
    """The process-wide client, created on first use (it costs an SSL context)."""
    global _client
    with _client_lock:
        if _client is None:
            import httpx

            _client = httpx.Client(follow_redirects=True, headers={"user-agent": USER_AGENT})
            atexit.register(_client.close)
        return _client


# -- performing a request ------------------------------------------------------------------


def perform_request(client: httpx.Client, request: Request, config: HostConfig) -> Payload:
    """Send `request` and return its outcome as a JSON-ready payload.

    Never raises for anything the network or the URL can do: each failure becomes a
    typed error (`{"error": {"kind": ..., "detail": ...}}`), recorded like a response.
    """
    import httpx

    problem = _check_url(request.url)
    if problem is not None:
        return _error("invalid-url", problem)
    timeout = _timeout(request.timeout_ms, config)
    limit = config.http_max_response_bytes
    deadline = time.monotonic() + timeout
    try:
        with client.stream(
            request.method,
            request.url,
            headers=request.headers,
            content=request.body,
            timeout=httpx.Timeout(timeout),
        ) as response:
            if _declared_length(response) > limit:
                return _error("too-large", limit)  # refuse before reading anything
            body = bytearray()
            # iter_bytes decodes gzip/deflate, so the limit also bounds a decompression bomb.
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > limit:
                    return _error("too-large", limit)
                # httpx times each read separately; this bounds the whole exchange.
                if time.monotonic() > deadline:
                    return _error("timeout", None)
            return {"ok": _response_payload(response, bytes(body))}
    except httpx.TimeoutException:
        return _error("timeout", None)
    except httpx.ConnectError as exc:
        if _caused_by(exc, socket.gaierror):
            return _error("name-resolution", _message(exc))
        return _error("connect", _message(exc))
    except (httpx.ReadError, httpx.WriteError, httpx.CloseError) as exc:
        return _error("connect", _message(exc))  # the connection broke mid-exchange
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        return _error("invalid-url", _message(exc))
    except (httpx.HTTPError, httpx.StreamError, OSError, ValueError) as exc:
        # A protocol error, too many redirects, a header that is not Latin-1, ...
        return _error("other", _message(exc))


def _timeout(timeout_ms: int | None, config: HostConfig) -> float:
    if timeout_ms is None:
        return min(config.http_default_timeout, config.http_max_timeout)
    return min(max(timeout_ms, 1) / 1000, config.http_max_timeout)


def _check_url(url: str) -> str | None:
    """Why `url` cannot be fetched, or None. Messages never repeat the URL itself."""
    if any(c <= " " or c == "\x7f" for c in url):
        return "URL contains whitespace or control characters"
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port out of range
    except ValueError as exc:
        return f"malformed URL: {exc}"
    if not parts.scheme:
        return "URL has no scheme: expected http:// or https://"
    if parts.scheme.lower() not in ("http", "https"):
        return f"unsupported scheme {parts.scheme!r}: expected http or https"
    if not parts.hostname:
        return "URL has no host"
    import httpx

    try:
        httpx.URL(url)
    except httpx.InvalidURL as exc:
        return f"malformed URL: {exc}"
    return None


def _declared_length(response: httpx.Response) -> int:
    """The Content-Length, when it is the length of the decoded body (else 0)."""
    if response.headers.get("content-encoding", "identity") != "identity":
        return 0
    try:
        return int(response.headers.get("content-length", "0"))
    except ValueError:
        return 0


def _response_payload(response: httpx.Response, body: bytes) -> Payload:
    headers = [[k.lower(), v] for k, v in response.headers.multi_items()]
    out: Payload = {"status": response.status_code, "headers": headers}
    try:
        out["text"] = body.decode("utf-8")  # readable in the log, and exact: UTF-8 round-trips
    except UnicodeDecodeError:
        out["base64"] = base64.b64encode(body).decode("ascii")
    return out


def _error(kind: str, detail: str | int | None) -> Payload:
    return {"error": {"kind": kind, "detail": detail}}


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    """Whether `kind` is in `exc`'s chain (httpx wraps the socket error it met)."""
    link: BaseException | None = exc
    for _ in range(16):  # chains can loop; the cause is never far down
        if link is None:
            return False
        if isinstance(link, kind):
            return True
        link = link.__cause__ or link.__context__
    return False


def _message(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _display_url(url: str) -> str:
    """`url` without user info, query or fragment, for labels and messages."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        parts, host, port = None, "", None
    if parts is None or not parts.scheme or not host:
        shown = url.split("?", 1)[0].split("#", 1)[0]
        return shown[:_LABEL_PATH_MAX]
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal
    netloc = host if port is None else f"{host}:{port}"
    path = parts.path or "/"
    if len(path) > _LABEL_PATH_MAX:
        path = path[:_LABEL_PATH_MAX] + "..."
    return f"{parts.scheme.lower()}://{netloc}{path}"


# -- handing the outcome to the guest -------------------------------------------------------


def to_wit(payload: Payload) -> wc.Record | wc.Variant:
    """A recorded outcome as the WIT `result<response, http-error>` value.

    The result's two cases have distinct Python types (a record, a variant), so
    wasmtime takes the bare value; the error variant is tagged.
    """
    if "ok" in payload:
        ok = payload["ok"]
        body = ok["text"].encode("utf-8") if "text" in ok else base64.b64decode(ok["base64"])
        headers = [(k, v) for k, v in ok["headers"]]
        fields = {"status": ok["status"], "headers": headers, "body": body}
        rec = wc.Record()
        for name, value in fields.items():
            setattr(rec, name, value)
        return rec
    err = payload["error"]
    return wc.Variant(err["kind"], err["detail"])
