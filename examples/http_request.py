"""Fetch JSON from a URL and print one of its fields.

Input: a JSON object with
  - "url": the http:// or https:// URL to GET (it must answer with JSON);
  - "field": the field to print; dots walk into nested objects and lists
    ("owner.login", "items.0.name");
  - "timeout" (optional): seconds the request may take (default: the host's, 30 s).

    durable run examples/http_request.py \\
        --input '{"url": "https://api.github.com/repos/python/cpython", "field": "full_name"}'

Prints the field's value and returns nothing. The response is recorded: if the worker
dies after the request, a resumed run prints the same value from the log instead of
asking again (unless it died before the response was committed, in which case the
request is sent again: HTTP effects are at least once). A 4xx or 5xx status, a
connection failure or a timeout fails the task with a one-line error.
"""

from __future__ import annotations

from typing import Any

import durable


def dig(value: Any, path: str) -> Any:
    """Follow a dotted path ("a.b.0") into nested objects and lists."""
    for part in path.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


@durable.workflow
def main(args: dict[str, Any]) -> None:
    response = durable.http.get(
        args["url"], headers={"accept": "application/json"}, timeout=args.get("timeout")
    )
    response.raise_for_status()
    print(dig(response.json(), args["field"]))
