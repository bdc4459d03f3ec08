"""Benchmarks: `booking-saga bench`. Every figure sits beside a baseline measured in the same run (see run.py)."""
