# One image for the API and every worker; the command picks the part (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY booking_saga ./booking_saga
COPY api ./api
COPY workflows ./workflows
COPY activities ./activities
COPY services ./services
COPY bench ./bench
# Production installs no embedded servers: PostgreSQL, Redis and Temporal come from DATABASE_URL, REDIS_URL,
# TEMPORAL_ADDRESS.
RUN pip install .

RUN useradd --system --uid 10001 app
USER app
ENTRYPOINT ["booking-saga"]
CMD ["api"]
