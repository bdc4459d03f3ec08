# One image for the API and every worker; the command picks the part (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

# The locked runtime dependencies (hashed, PyPI) first: their layer survives every source change.
COPY requirements/prod.lock ./requirements/
RUN pip install --require-hashes -r requirements/prod.lock
COPY pyproject.toml README.md ./
COPY settings ./settings
COPY runtime ./runtime
COPY booking_saga ./booking_saga
COPY api ./api
COPY checkouts ./checkouts
COPY workflows ./workflows
COPY activities ./activities
COPY services ./services
# Production installs no embedded servers: PostgreSQL, Redis and Temporal come from DATABASE_URL, REDIS_URL,
# TEMPORAL_ADDRESS.
RUN pip install --no-deps --no-build-isolation .

RUN useradd --system --uid 10001 app
USER app
ENTRYPOINT ["booking-saga"]
CMD ["api"]
