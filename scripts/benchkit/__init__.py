"""The benchmark behind scripts/bench.py: one module per scenario (see registry.py, docs/benchmarks.md)."""
