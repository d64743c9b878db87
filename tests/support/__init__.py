"""Helpers the tests and the benchmarks import: plain modules, no tests and no fixtures.

The fixtures are in tests/conftest.py; a test module imports from here and
never from another test module.
"""
