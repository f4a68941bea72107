"""Who may use the dashboard, and how a write is told from a forged one.

The dashboard can cancel and signal any task, so it is guarded like a shell:

* Binding: loopback by default; any other address needs a token (`bind_refusal`).
* Host: without a token, only requests addressed to a loopback name are answered, so
  that a site whose name is made to point at 127.0.0.1 (DNS rebinding) gets nothing.
* Token: with one set, every request carries it, as `Authorization: Bearer T` or as
  the cookie a first visit with `?token=T` sets (HttpOnly, SameSite=Strict); compared
  in constant time.
* Writes: POST only, with a CSRF token that only a page of the dashboard can know (an
  HMAC of a secret made at start-up), and an `Origin`, when the browser sends one,
  equal to the dashboard's own. A page elsewhere can make the operator's browser post
  a form, but cannot read the token to put in it.
* Pages: a Content-Security-Policy that runs only the dashboard's own script, so that
  markup a hostile workflow slips past escaping still cannot run.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from urllib.parse import urlencode

from starlette.datastructures import URL
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp

TOKEN_ENV = "DURABLE_UI_TOKEN"
COOKIE = "durable_ui_token"

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine only (`localhost`, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind_refusal(host: str, token: str | None) -> str | None:
    """Why the dashboard may not listen on `host` with this token, or None."""
    if not is_loopback(host) and not token:
        return (
            f"refusing to serve the dashboard on {host} without a token: "
            f"set --token or {TOKEN_ENV} (or bind 127.0.0.1)"
        )
    return None


class Guard:
    """The secrets of one dashboard process: its access token and its CSRF key."""

    def __init__(self, token: str | None) -> None:
        """`token`: what every request must carry; None or empty: none needed."""
        self.token = token or None
        self._csrf_key = secrets.token_bytes(32)

    def csrf(self) -> str:
        """The CSRF token forms carry (the same for every page of this process)."""
        return hmac.new(self._csrf_key, b"durable-ui-csrf", hashlib.sha256).hexdigest()

    def csrf_ok(self, sent: str | None) -> bool:
        """Whether a form's CSRF token is this process's."""
        return sent is not None and hmac.compare_digest(sent.encode(), self.csrf().encode())

    def token_ok(self, sent: str | None) -> bool:
        """Whether `sent` is the access token (constant time)."""
        if self.token is None:
            return True
        return sent is not None and hmac.compare_digest(sent.encode(), self.token.encode())


def same_origin(request: Request) -> bool:
    """False when the browser says the request came from a page of another origin."""
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not a browser's cross-site form (those send Origin), or a GET
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    return origin == own


class GuardMiddleware(BaseHTTPMiddleware):
    """Checks the token on every request and sets the security headers on every answer."""

    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        """Guard `app` with `guard`."""
        super().__init__(app)
        self.guard = guard

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        """Refuse, turn a `?token=` visit into a cookie, or pass the request on."""
        response = await self._checked(request, call_next)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Cache-Control"] = "no-store"
        return response

    async def _checked(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        guard = self.guard
        if guard.token is None and not is_loopback(_host_name(request)):
            # Without a token only a page of this machine's own name may talk to it: a
            # site whose name an attacker pointed at 127.0.0.1 (DNS rebinding) may not.
            return PlainTextResponse("this dashboard answers to localhost only\n", status_code=421)
        if guard.token is not None:
            given = request.query_params.get("token")
            if given is not None and request.method == "GET":
                if not guard.token_ok(given):
                    return PlainTextResponse("wrong token\n", status_code=401)
                # Into a cookie, and out of the address bar (and history, and logs).
                rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
                target = URL(path=request.url.path, query=urlencode(rest))
                redirect = RedirectResponse(str(target), status_code=303)
                redirect.set_cookie(
                    COOKIE, given, httponly=True, samesite="strict",
                    secure=request.url.scheme == "https", path="/",
                )  # fmt: skip
                return redirect
            if not guard.token_ok(_presented(request)):
                return PlainTextResponse(
                    "this dashboard needs its token: open it once with ?token=...\n",
                    status_code=401,
                )
        if request.method not in ("GET", "HEAD") and not same_origin(request):
            return PlainTextResponse("cross-origin request refused\n", status_code=403)
        return await call_next(request)


def _host_name(request: Request) -> str:
    """The name the client used for the dashboard (the Host header, without port)."""
    host = request.headers.get("host", "")
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0]


def _presented(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.cookies.get(COOKIE)
