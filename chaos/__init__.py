"""The chaos suite: the production shape as real processes on this machine, load, faults, then invariants.

`chaos.stack` starts PostgreSQL, Redis, the Temporal dev server (on a SQLite file), two API replicas and two
workers per service with the project's own commands, and kills and restarts any of them. `chaos.load` runs the
clients, `chaos.faults` the fault schedule, `chaos.invariants` the checks after the load, `chaos.report` the
fault x invariant table and `chaos.run` puts them together (`booking-saga chaos`, tests/chaos/).
"""
