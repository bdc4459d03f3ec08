"""Thin Temporal activity adapters: one module per service, each calling services/ and nothing else."""
