"""The checkout HTTP API (FastAPI): routes per area, request/response schemas, problem+json errors."""
