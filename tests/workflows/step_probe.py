"""For the replay check: a step whose body makes a live HTTP request."""

from __future__ import annotations

import durable
from durable import http


@durable.step
def begin(url: str) -> str:
    return url


@durable.step
def fetch(url: str) -> int:
    # Inside a step the request is not recorded on its own: it is sent for real.
    return http.get(url).status


@durable.workflow
def main(url: str) -> int:
    begin(url)
    return fetch(url)
