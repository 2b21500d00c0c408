"""Measurements run by hand (`make bench`, `python -m benchmarks [name]`), never in tests."""
