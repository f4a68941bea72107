"""durable's version: the one place it is written (pyproject.toml reads it from here).

A literal, so that `durable --version` needs no package metadata lookup (importing
`importlib.metadata` alone costs more than the rest of the command).
"""

from __future__ import annotations

__version__ = "0.1.0"
