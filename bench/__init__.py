"""Benchmark scripts (``python bench/run.py``); see bench/README.md."""
