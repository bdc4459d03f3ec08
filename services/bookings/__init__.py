"""Booking records: every checkout's state in the API's own schema, kept after its workflow is gone.

`models` is pure pydantic (the workflow imports it); `records` is the PostgreSQL side."""
