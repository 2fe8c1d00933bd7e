"""Benchmarks for bulkupdate; run each as `python -m benchmarks.NAME` (see README.md)."""
