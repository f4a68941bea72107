"""The performance suite: `python -m benchmarks [--quick] [--backend ...] [--json OUT]`."""
