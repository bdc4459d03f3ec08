"""The process runtime: logging, tracing, the Temporal client, the embedded servers, the workers and the dev stack.

Above workflows/ and activities/, below api/ and the CLI (booking_saga/): nothing here imports either.
"""
