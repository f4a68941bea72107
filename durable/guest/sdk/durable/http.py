"""Outbound HTTP from a workflow: `durable.http.get(url)` and friends.

Each request is sent by the host, at least once, and its outcome (the response, or the
error) is recorded before the workflow sees it. A replay gets the recorded outcome back
without touching the network, so the workflow takes the same path again::

    import durable

    @durable.workflow
    def main(city: str) -> float:
        r = durable.http.get("https://api.example.com/weather", params={"q": city})
        r.raise_for_status()
        return r.json()["temperature"]

At least once: if the worker dies after the request went out but before its outcome
was committed, the replay sends it again. Make requests that change things idempotent
(e.g. with an idempotency-key header derived from `durable.info().id`).

Errors are exceptions under `HTTPError`: `Timeout`, `ConnectError` (with
`NameResolutionError` for DNS failures), `InvalidURL`, `ResponseTooLarge`, and
`HTTPStatusError` from `Response.raise_for_status()`. Error statuses (404, 500) are
responses, not exceptions. A failed request is recorded too: a replay raises the same
exception at the same point.
"""

from __future__ import annotations

import json as _json
import math
from collections.abc import Iterator, Mapping, Sequence
from http import HTTPStatus
from typing import Any
from urllib.parse import urlencode, urlsplit

from componentize_py_types import Err
from wit_world.imports import http as _wit

from durable import _cancel
from durable._errors import DurableGuestError

__all__ = [
    "ConnectError",
    "HTTPError",
    "HTTPStatusError",
    "Headers",
    "InvalidURL",
    "NameResolutionError",
    "Response",
    "ResponseTooLarge",
    "Timeout",
    "delete",
    "get",
    "head",
    "patch",
    "post",
    "put",
    "request",
]

HeadersLike = Mapping[str, str] | Sequence[tuple[str, str]]
ParamValue = str | int | float | bool | None
ParamsLike = (
    Mapping[str, ParamValue | Sequence[ParamValue]] | Sequence[tuple[str, ParamValue]] | str
)

_MAX_TIMEOUT_MS = 2**32 - 1  # the WIT field is a u32; the host lowers it to its maximum
# The characters of an RFC 9110 token: what a method may be made of.
_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)


# -- exceptions ------------------------------------------------------------------------------


class HTTPError(DurableGuestError):
    """Root of the HTTP errors. Raised as itself for failures with no finer type
    (a protocol error, too many redirects).

    Attributes:
        method: the request's method.
        url: the request's URL without its query string (which may hold secrets).
    """

    def __init__(self, message: str, *, method: str = "", url: str = "") -> None:
        super().__init__(message)
        self.method = method
        self.url = url


class Timeout(HTTPError):
    """The response was not complete within the timeout."""


class ConnectError(HTTPError):
    """No connection: refused, reset, unreachable, or a TLS failure."""


class NameResolutionError(ConnectError):
    """The host name could not be resolved (DNS)."""


class InvalidURL(HTTPError):
    """The URL is malformed, or its scheme is not http or https."""


class ResponseTooLarge(HTTPError):
    """The response body exceeded the host's limit (`limit`, in bytes)."""

    def __init__(self, message: str, *, limit: int, method: str = "", url: str = "") -> None:
        super().__init__(message, method=method, url=url)
        self.limit = limit


class HTTPStatusError(HTTPError):
    """Raised by `Response.raise_for_status()` for a 4xx or 5xx status."""

    def __init__(self, message: str, *, response: Response) -> None:
        super().__init__(message, method=response.method, url=_display_url(response.url))
        self.response = response


# -- responses -------------------------------------------------------------------------------


class Headers(Mapping[str, str]):
    """Response headers: a read-only, case-insensitive mapping.

    A header that occurs several times maps to its values joined by ", ";
    `get_list(name)` returns them one by one.
    """

    def __init__(self, items: Sequence[tuple[str, str]] = ()) -> None:
        self._items = [(str(k), str(v)) for k, v in items]
        self._index: dict[str, list[str]] = {}
        self._names: dict[str, str] = {}
        for name, value in self._items:
            key = name.lower()
            self._index.setdefault(key, []).append(value)
            self._names.setdefault(key, name)

    def __getitem__(self, name: str) -> str:
        return ", ".join(self._index[name.lower()])

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._names.values())

    def __len__(self) -> int:
        return len(self._index)

    def get_list(self, name: str) -> list[str]:
        """Every value of `name`, in order (empty when absent)."""
        return list(self._index.get(name.lower(), []))

    def multi_items(self) -> list[tuple[str, str]]:
        """Every (name, value) pair, in order, repeats included."""
        return list(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


class Response:
    """An HTTP response, whatever its status.

    Attributes:
        status: the status code (also `status_code`).
        headers: a case-insensitive `Headers` mapping.
        content: the body, as bytes (decoded from gzip or deflate).
        method: the request's method.
        url: the URL requested (redirects are followed; this is the first URL).
    """

    def __init__(
        self, *, method: str, url: str, status: int, headers: Headers, content: bytes
    ) -> None:
        self.method = method
        self.url = url
        self.status = status
        self.headers = headers
        self.content = content

    @property
    def status_code(self) -> int:
        """The same as `status`."""
        return self.status

    @property
    def ok(self) -> bool:
        """True for a status below 400."""
        return self.status < 400

    @property
    def reason(self) -> str:
        """The standard reason phrase for the status ("Not Found"), or ""."""
        try:
            return HTTPStatus(self.status).phrase
        except ValueError:
            return ""

    @property
    def encoding(self) -> str:
        """The charset named by Content-Type, else "utf-8"."""
        for param in self.headers.get("content-type", "").split(";")[1:]:
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "charset" and value.strip():
                return value.strip().strip('"')
        return "utf-8"

    @property
    def text(self) -> str:
        """The body decoded as text (undecodable bytes become U+FFFD)."""
        try:
            return self.content.decode(self.encoding, errors="replace")
        except LookupError:  # an unknown charset
            return self.content.decode("utf-8", errors="replace")

    def json(self, **kwargs: Any) -> Any:
        """The body parsed as JSON (raises `ValueError` when it is not JSON)."""
        return _json.loads(self.content, **kwargs)

    def raise_for_status(self) -> Response:
        """Raise `HTTPStatusError` for a 4xx or 5xx status; else return the response."""
        if self.status >= 400:
            kind = "client error" if self.status < 500 else "server error"
            status = f"{self.status} {self.reason}" if self.reason else str(self.status)
            where = f"{self.method} {_display_url(self.url)}"
            raise HTTPStatusError(f"{status} ({kind}) for {where}", response=self)
        return self

    def __repr__(self) -> str:
        return f"<Response [{self.status}]>"


# -- requests --------------------------------------------------------------------------------


def request(
    method: str,
    url: str,
    *,
    params: ParamsLike | None = None,
    headers: HeadersLike | None = None,
    json: Any = None,
    data: bytes | str | Mapping[str, Any] | None = None,
    content: bytes | str | None = None,
    timeout: float | None = None,
) -> Response:
    """Send an HTTP request (recorded: a replay returns the recorded outcome).

    Args:
        method: "GET", "POST", ... (any case).
        url: an absolute http:// or https:// URL.
        params: query parameters added to the URL: a mapping (a list value repeats the
            key), a sequence of pairs, or an encoded string.
        headers: request headers, a mapping or a sequence of pairs.
        json: a value sent as a JSON body (Content-Type: application/json).
        data: a mapping sent as a form (application/x-www-form-urlencoded), or a raw
            body like `content`.
        content: a raw body; a str is encoded as UTF-8.
        timeout: seconds the whole exchange may take; None for the host's default. The
            host lowers it to its own maximum.

    Returns:
        The `Response`, whatever its status.

    Raises:
        Timeout, ConnectError, NameResolutionError, InvalidURL, ResponseTooLarge,
        HTTPError: the request failed (recorded, so a replay raises the same).
        ValueError, TypeError: bad arguments (not recorded: nothing was sent).
    """
    method = _check_method(method)
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, not {type(url).__name__}")
    full_url = _with_params(url, params)
    header_list = _header_list(headers)
    body, content_type = _body(json, data, content)
    if content_type and not any(k.lower() == "content-type" for k, _ in header_list):
        header_list.append(("content-type", content_type))
    req = _wit.Request(
        method=method, url=full_url, headers=header_list, body=body, timeout_ms=_timeout_ms(timeout)
    )
    _cancel.check()  # else the host stops a cancelled task at the fetch (no cleanup)
    try:
        raw = _wit.fetch(req)
    except Err as err:
        raise _exception(err.value, method, full_url) from None
    return Response(
        method=method,
        url=full_url,
        status=raw.status,
        headers=Headers(raw.headers),
        content=bytes(raw.body),
    )


def get(url: str, **kwargs: Any) -> Response:
    """Send a GET request; see `request` for the keyword arguments."""
    return request("GET", url, **kwargs)


def head(url: str, **kwargs: Any) -> Response:
    """Send a HEAD request; see `request`."""
    return request("HEAD", url, **kwargs)


def post(url: str, **kwargs: Any) -> Response:
    """Send a POST request; see `request`."""
    return request("POST", url, **kwargs)


def put(url: str, **kwargs: Any) -> Response:
    """Send a PUT request; see `request`."""
    return request("PUT", url, **kwargs)


def patch(url: str, **kwargs: Any) -> Response:
    """Send a PATCH request; see `request`."""
    return request("PATCH", url, **kwargs)


def delete(url: str, **kwargs: Any) -> Response:
    """Send a DELETE request; see `request`."""
    return request("DELETE", url, **kwargs)


# -- helpers ---------------------------------------------------------------------------------


def _check_method(method: str) -> str:
    if not isinstance(method, str) or not method or not set(method) <= _TOKEN_CHARS:
        raise ValueError(f"invalid HTTP method {method!r}")
    return method.upper()


def _param_text(value: object) -> str:
    # As httpx renders them: JSON-style booleans, None as empty.
    if value is True:
        return "true"
    if value is False:
        return "false"
    return "" if value is None else str(value)


def _with_params(url: str, params: ParamsLike | None) -> str:
    if params is None:
        return url
    if isinstance(params, str):
        query = params.lstrip("?")
    else:
        pairs: list[tuple[str, str]] = []
        items = params.items() if isinstance(params, Mapping) else params
        for key, value in items:
            if isinstance(value, (list, tuple)):
                pairs.extend((str(key), _param_text(v)) for v in value)
            else:
                pairs.append((str(key), _param_text(value)))
        query = urlencode(pairs)
    if not query:
        return url
    base, hashmark, fragment = url.partition("#")
    if "?" not in base:
        base += "?"
    elif not base.endswith(("?", "&")):
        base += "&"
    return base + query + hashmark + fragment


def _header_list(headers: HeadersLike | None) -> list[tuple[str, str]]:
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    out = []
    for name, value in items:
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(f"header names and values must be str, got {name!r}: {value!r}")
        out.append((name, value))
    return out


def _body(json: Any, data: Any, content: Any) -> tuple[bytes | None, str | None]:
    named = (("json", json), ("data", data), ("content", content))
    given = [name for name, value in named if value is not None]
    if len(given) > 1:
        raise TypeError(f"give at most one of json=, data= and content= (got {', '.join(given)})")
    if json is not None:
        return _json.dumps(json, allow_nan=False).encode(), "application/json"
    if isinstance(data, Mapping):
        return urlencode([(str(k), _param_text(v)) for k, v in data.items()]).encode(), (
            "application/x-www-form-urlencoded"
        )
    raw = data if data is not None else content
    if raw is None:
        return None, None
    if isinstance(raw, str):
        return raw.encode("utf-8"), None
    if isinstance(raw, (bytes, bytearray, memoryview)):
        return bytes(raw), None
    raise TypeError(f"a body must be bytes or str, not {type(raw).__name__}")


def _timeout_ms(timeout: float | None) -> int | None:
    if timeout is None:
        return None
    if not isinstance(timeout, (int, float)) or timeout != timeout or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
    return min(math.ceil(timeout * 1000), _MAX_TIMEOUT_MS)


def _exception(err: Any, method: str, url: str) -> HTTPError:
    """The exception for a recorded `http-error`."""
    shown = _display_url(url)
    where = f"{method} {shown}"
    if isinstance(err, _wit.HttpError_Timeout):
        return Timeout(f"{where}: timed out", method=method, url=shown)
    if isinstance(err, _wit.HttpError_NameResolution):
        return NameResolutionError(
            f"{where}: cannot resolve host: {err.value}", method=method, url=shown
        )
    if isinstance(err, _wit.HttpError_Connect):
        return ConnectError(f"{where}: cannot connect: {err.value}", method=method, url=shown)
    if isinstance(err, _wit.HttpError_InvalidUrl):
        return InvalidURL(f"{where}: invalid URL: {err.value}", method=method, url=shown)
    if isinstance(err, _wit.HttpError_TooLarge):
        return ResponseTooLarge(
            f"{where}: response body larger than {err.value} bytes",
            limit=err.value,
            method=method,
            url=shown,
        )
    return HTTPError(f"{where}: {getattr(err, 'value', err)}", method=method, url=shown)


def _display_url(url: str) -> str:
    """`url` without user info, query or fragment: safe for messages and logs."""
    try:
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
    except ValueError:
        parts, host = None, ""
    if parts is None or not parts.scheme or not host:
        return url.split("?", 1)[0].split("#", 1)[0]
    return f"{parts.scheme}://{host}{parts.path}"
