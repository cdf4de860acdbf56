"""Benchmark harness: ``python -m benchmarks cpu`` and ``python -m benchmarks gpu``.

kmeans_xp on every installed backend against the tools users would otherwise pick, from the same
data and the same initial centers. Speed lives here and in RESULTS.md, never in the tests.
"""
