"""The `booking-saga` command: one sub-command per part, each reading the same Settings."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from datetime import datetime
from typing import NoReturn

from pydantic import ValidationError

from runtime.logs import configure_logging
from services.registry import WORKER_CHOICES
from settings import Settings, UnsafeSettings, get_settings


def _need_database(settings: Settings) -> None:
    if not settings.database_url:
        sys.exit("DATABASE_URL is not set (only `booking-saga dev` starts an embedded PostgreSQL)")


def cmd_dev(settings: Settings, _args: argparse.Namespace) -> int:
    from runtime.devstack import run

    return run(settings)


def cmd_api(settings: Settings, _args: argparse.Namespace) -> int:
    import uvicorn

    _need_database(settings)
    from api.main import SERVER_OPTIONS, create_app
    from runtime.tracing import setup_tracing, shutdown_tracing

    setup_tracing("booking-saga-api", settings)  # before the app is built: create_app instruments it
    try:
        try:
            app = create_app(settings)  # refuses unsafe settings (settings.start_checks)
        except UnsafeSettings as refused:
            sys.exit(str(refused))
        uvicorn.run(app, host=settings.api_host, port=settings.api_port, **SERVER_OPTIONS)
    finally:
        shutdown_tracing()
    return 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    import uvloop

    # uvloop, as the API's uvicorn: asyncpg and the activities' sockets cost the worker less CPU per checkout on
    # it than on asyncio's own loop.
    from runtime.tracing import setup_tracing, shutdown_tracing
    from runtime.worker import run_worker

    setup_tracing(f"booking-saga-worker-{args.service}", settings)
    try:
        uvloop.run(run_worker(settings, args.service, noop=args.noop))
    except UnsafeSettings as refused:  # run_worker's start checks
        sys.exit(str(refused))
    finally:
        shutdown_tracing()
    return 0


def cmd_migrate(settings: Settings, _args: argparse.Namespace) -> int:
    from runtime.maintenance import migrate

    _need_database(settings)
    asyncio.run(migrate(settings.database_url, settings.participant_database_urls))
    print("migrated to head")
    return 0


def cmd_seed(settings: Settings, _args: argparse.Namespace) -> int:
    from runtime.maintenance import seed

    _need_database(settings)
    asyncio.run(seed(settings.database_url, settings.participant_database_urls))
    print("demo inventory seeded")
    return 0


def cmd_audit(settings: Settings, args: argparse.Namespace) -> int:
    from runtime.maintenance import audit, audit_sagas

    _need_database(settings)
    violations = asyncio.run(audit(settings.database_url, settings.participant_database_urls))
    report: dict[str, object] = {"ok": not violations, "violations": [v.model_dump() for v in violations]}
    if args.sagas:  # needs Temporal (TEMPORAL_ADDRESS) too
        sagas = asyncio.run(audit_sagas(settings, since=args.since, limit=args.limit))
        report["ok"] = not violations and sagas.ok
        report["sagas"] = sagas.model_dump(mode="json")
    print(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


def cmd_replay(settings: Settings, args: argparse.Namespace) -> int:
    from runtime.replay import replay_files, replay_query

    if args.query is not None:
        return asyncio.run(replay_query(settings, args.query))
    if not args.files:
        sys.exit("give history JSON files, or --query to replay a running server's histories")
    return asyncio.run(replay_files(args.files, settings))


def cmd_checkouts(settings: Settings, args: argparse.Namespace) -> int:
    from booking_saga.checkouts_cli import main as checkouts_main

    return asyncio.run(checkouts_main(settings, args, sys.stdout))


def cmd_bench(settings: Settings, args: argparse.Namespace) -> int:
    from bench.run import main as bench_main

    return bench_main(settings, args)


def cmd_codec_endpoint(settings: Settings, args: argparse.Namespace) -> int:
    """The Temporal UI's codec endpoint for this OPERATOR_TOKEN (api/routes/codec.py; docs/temporal-security.md)."""
    from runtime.codec import ui_codec_path

    if not settings.operator_token:
        sys.exit("OPERATOR_TOKEN is not set: the UI's codec endpoint is derived from it")
    print(args.api_url.rstrip("/") + ui_codec_path(settings.operator_token))
    return 0


def cmd_chaos(_settings: Settings, args: argparse.Namespace) -> int:
    from chaos.run import main as chaos_main

    return chaos_main(args)


def cmd_relay(settings: Settings, args: argparse.Namespace) -> int:
    from booking_saga.relay import cmd_relay as relay

    return relay(settings, args)


def cmd_events(settings: Settings, args: argparse.Namespace) -> int:
    from booking_saga.relay import cmd_events as events

    return events(settings, args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="booking-saga", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("dev", help="the whole embedded stack: Temporal (UI :8233), PostgreSQL, Redis, workers, API :8000")
    sub.add_parser("api", help="the HTTP API (uvicorn) against configured servers")
    worker = sub.add_parser("worker", help="Temporal worker(s) for one service, or all")
    worker.add_argument("--service", choices=WORKER_CHOICES, default="all")
    worker.add_argument("--noop", action="store_true", help="no-op activities under the real names (benchmark floor)")
    sub.add_parser("migrate", help="apply the Alembic migrations")
    sub.add_parser("seed", help="upsert the demo inventory")
    audit = sub.add_parser("audit", help="check the ledger invariant; exit 1 on any violation")
    audit.add_argument("--sagas", action="store_true", help="also hold every checkout's saga against its holds")
    audit.add_argument("--since", type=datetime.fromisoformat, help="--sagas: only sagas started since (ISO 8601)")
    audit.add_argument("--limit", type=int, help="--sagas: look at no more than this many checkouts")
    replay = sub.add_parser("replay", help="replay workflow histories against the current code")
    replay.add_argument("files", nargs="*", help="history JSON files")
    replay.add_argument("--query", help='visibility query on the running server, e.g. "WorkflowType=\'CheckoutSaga\'"')
    from booking_saga.checkouts_cli import add_parser as add_checkouts_parser

    add_checkouts_parser(sub)
    from booking_saga.relay import add_events_parser

    add_events_parser(sub)
    bench = sub.add_parser("bench", help="benchmarks, reported as ratios against a floor measured in the same run")
    bench.add_argument("--size", choices=("tiny", "small", "full"), default="small")
    bench.add_argument("--out", default=".bench")
    codec = sub.add_parser("codec-endpoint", help="the Temporal UI's codec server endpoint for this OPERATOR_TOKEN")
    codec.add_argument("--api-url", default="http://127.0.0.1:8000", help="where the UI's browsers reach the API")
    chaos = sub.add_parser("chaos", help="the production shape as processes, load and faults, then invariants")
    chaos.add_argument("--minutes", type=float, default=2.0, help="how long the load runs")
    chaos.add_argument("--faults", type=int, help="how many faults (default 7.5 a minute, at least 5)")
    chaos.add_argument("--seed", type=int, help="the random seed (printed at the start)")
    chaos.add_argument("--data-dir", help="keep the run's servers, data and logs here (default: a temporary dir)")
    chaos.add_argument("--soak", action="store_true",
                       help="also check the APIs' and workers' RSS, file descriptors and sockets stay flat")
    return parser


COMMANDS = {
    "dev": cmd_dev,
    "api": cmd_api,
    "worker": cmd_worker,
    "migrate": cmd_migrate,
    "seed": cmd_seed,
    "audit": cmd_audit,
    "replay": cmd_replay,
    "checkouts": cmd_checkouts,
    "bench": cmd_bench,
    "chaos": cmd_chaos,
    "codec-endpoint": cmd_codec_endpoint,
    "relay": cmd_relay,
    "events": cmd_events,
}


# Commands whose process holds a Temporal client or worker.
_TEMPORAL_COMMANDS = {"api", "worker", "replay", "bench", "audit", "checkouts"}


def _exit_without_finalizing(code: int) -> NoReturn:
    """Temporal's Rust core keeps threads that can touch the GIL while CPython finalizes, which aborts a process
    that had already shut down cleanly ("PyGILState_Release ... finalizing", sdk-python issue 300): once
    everything is stopped and flushed, leave without interpreter teardown."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = get_settings()
    except ValidationError as invalid:  # say which setting, without a traceback, and never echo the values
        reasons = [f"{'.'.join(map(str, error['loc'])).upper() or 'settings'}: {error['msg']}"
                   for error in invalid.errors()]
        sys.exit("invalid settings:\n" + "\n".join(f"  - {reason}" for reason in reasons))
    configure_logging(settings)
    code = COMMANDS[args.command](settings, args)
    if args.command in _TEMPORAL_COMMANDS and argv is None:
        _exit_without_finalizing(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
