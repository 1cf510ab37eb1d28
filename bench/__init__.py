"""Benchmarks: `python -m bench.<name>`; results with their commands in bench/RESULTS.md."""
