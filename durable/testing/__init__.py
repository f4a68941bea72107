"""Helpers for testing code built on `durable`: throwaway servers and fixtures."""

from __future__ import annotations
