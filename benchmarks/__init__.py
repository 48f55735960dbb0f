"""Benchmarks: scripts that print a JSON summary as their last line (run with `python -m benchmarks.NAME`)."""
