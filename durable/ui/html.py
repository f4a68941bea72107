"""HTML building blocks of the dashboard: escaping, the layout, tables, times.

Everything shown comes through `e` (or a helper that uses it): task names, inputs,
results, logs, event labels and payloads are written by untrusted workflows and their
callers. Values are escaped for text and for quoted attributes alike.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from durable.core.model import TaskState

NAV = (("/", "Overview"), ("/tasks", "Tasks"), ("/workers", "Workers"))


def e(value: object) -> str:
    """`value` as text, safe in an element or a quoted attribute."""
    return html.escape("" if value is None else str(value), quote=True)


def when(moment: datetime | None) -> str:
    """A UTC time to the second, or "" for none."""
    if moment is None:
        return ""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def seconds(value: float) -> str:
    """A duration, to a readable precision."""
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


def badge(state: str, *, element_id: str | None = None) -> str:
    """A coloured state label."""
    known = state if state in {s.value for s in TaskState} else "unknown"
    ident = f' id="{e(element_id)}"' if element_id else ""
    return f'<span{ident} class="state state-{known}">{e(state)}</span>'


def pretty_json(text: str | None, limit: int = 20_000) -> str:
    """JSON text indented for reading (as it is, if it does not parse), escaped, cut
    at `limit` characters."""
    if text is None:
        return ""
    try:
        shown = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        shown = text
    if len(shown) > limit:
        shown = shown[:limit] + f"\n... ({len(shown) - limit} more characters)"
    return e(shown)


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, body_attrs: str = "") -> str:
    """A table; `rows` hold HTML already escaped (by the caller, with `e`)."""
    head = "".join(
        f'<th class="num">{e(h[1:])}</th>' if h.startswith("#") else f"<th>{e(h)}</th>"
        for h in headers
    )
    body = "".join("<tr>" + "".join(cells) + "</tr>" for cells in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody{body_attrs}>{body}</tbody></table>"


def td(content: str, *, num: bool = False) -> str:
    """A cell of HTML already escaped."""
    return f'<td class="num">{content}</td>' if num else f"<td>{content}</td>"


def page(title: str, body: str, *, here: str = "", flash: str = "", error: bool = False) -> str:
    """The whole page around `body` (HTML already escaped)."""
    links = "".join(
        f'<a href="{href}"{" class=here" if href == here else ""}>{e(label)}</a>'
        for href, label in NAV
    )
    note = ""
    if flash:
        note = f'<div class="flash{" error" if error else ""}" role="status">{e(flash)}</div>'
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{e(title)} · durable</title>"
        '<link rel=stylesheet href="/static/app.css">'
        '<script src="/static/app.js" defer></script></head><body>'
        f"<header><strong>durable</strong>{links}</header>"
        f"<main>{note}<h1>{e(title)}</h1>{body}</main></body></html>"
    )
