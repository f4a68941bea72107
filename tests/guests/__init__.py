"""Guests written in languages other than Python, built from source by the tests."""
