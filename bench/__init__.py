"""Benchmarks of OpenSMM components, run as `python -m bench.<name>`."""
