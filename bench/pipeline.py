"""`python -m bench.pipeline --messages N`: drain a backlog of buyer messages from poll to draft/outbox.

Real PostgreSQL (a private schema), Redis (a database of its own), real `sellerdesk worker` processes
(one for polls, one for triage and sending) and the sandbox marketplace in this process. Figures:
messages/s, p50/p95 latency (fetched -> draft committed), SQL statements per message, peak RSS per
worker process, and the raw baseline: the same rows written with psycopg COPY, no logic.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import psycopg
import redis as redis_lib
from sqlalchemy import func, select

from bench import instrument
from bench.common import (
    add_accounts,
    emit,
    install_settings,
    percentile,
    private_schema,
    redis_db_url,
    say,
    stop_cleanly_on_sigterm,
)
from bench.harness import Daemon, daemon_env, flush_broker, tick
from connectors.sandbox.server import SandboxServer
from worker import models as m
from worker.db import session_scope

BROKER_DB = 14


def _decided(message_ids: set[str] | None = None) -> tuple[int, int]:
    """(buyer messages stored, of which no longer waiting for triage)."""
    with session_scope() as s:
        stored = s.scalar(select(func.count()).select_from(m.Message).where(m.Message.direction == "buyer"))
        open_ = s.scalar(
            select(func.count())
            .select_from(m.Message)
            .where(m.Message.direction == "buyer", m.Message.triage_state.in_(["new", "processing"]))
        )
    return stored or 0, (stored or 0) - (open_ or 0)


def raw_baseline(database_url: str, n: int) -> float:
    """Rows per second of psycopg COPY writing, per message, a message, a decision and a draft row."""
    from sqlalchemy import make_url

    url = make_url(database_url)
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE raw_messages (id bigserial primary key, conversation_id int, external_id text,"
            " body text, created_at timestamptz default now(), unique (conversation_id, external_id))"
        )
        conn.execute(
            "CREATE TABLE raw_decisions (id bigserial primary key, message_id bigint, intent text,"
            " confidence numeric, created_at timestamptz default now())"
        )
        conn.execute(
            "CREATE TABLE raw_drafts (id bigserial primary key, decision_id bigint, body text,"
            " state text, created_at timestamptz default now())"
        )
        body = "Hello, where is my order 8123456789? It has been 23 days and tracking shows nothing."
        reply = "Hello Maria, thank you for your message. Your parcel is on its way: " + "x" * 200
        started = time.perf_counter()
        with conn.transaction():
            with conn.cursor().copy(
                "COPY raw_messages (conversation_id, external_id, body) FROM STDIN"
            ) as cp:
                for i in range(n):
                    cp.write_row((i // 3, f"7{i:09d}", body))
            with conn.cursor().copy("COPY raw_decisions (message_id, intent, confidence) FROM STDIN") as cp:
                for i in range(n):
                    cp.write_row((i + 1, "where_is_my_order", 0.93))
            with conn.cursor().copy("COPY raw_drafts (decision_id, body, state) FROM STDIN") as cp:
                for i in range(n):
                    cp.write_row((i + 1, reply, "pending"))
        elapsed = time.perf_counter() - started
    return n / elapsed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=20000)
    p.add_argument("--accounts", type=int, default=4)
    p.add_argument("--poll-concurrency", type=int, default=1)
    p.add_argument("--triage-concurrency", type=int, default=2)
    p.add_argument("--timeout", type=float, default=900.0, help="give up after this many seconds of draining")
    args = p.parse_args(argv)
    stop_cleanly_on_sigterm()
    broker = redis_db_url(BROKER_DB)
    flush_broker(broker)
    counters = redis_lib.Redis.from_url(broker)
    with tempfile.TemporaryDirectory(prefix="sd-bench-") as tmp, private_schema("bench_pipeline") as url:
        data_dir = Path(tmp) / "data"
        settings = install_settings(data_dir, url, broker)
        sb = SandboxServer(seed=5, port=0, accounts=args.accounts, speed=1.0).start()
        add_accounts(sb, settings, page_size=100, max_pages_per_call=5)
        env = daemon_env(data_dir, url, broker, SELLERDESK_POLL_INTERVAL_SECONDS="1")
        daemon = Daemon(env=env, log_dir=Path(tmp) / "logs", module="bench.instrument")
        daemon.start_worker("sellerdesk.poll", args.poll_concurrency)
        daemon.start_worker("sellerdesk,sellerdesk.send", args.triage_concurrency)
        try:
            figures = _run(args, sb, daemon, counters, url)
        finally:
            daemon.stop()
            sb.stop()
            flush_broker(broker)
    emit(figures)
    return 0 if figures["lost"] == 0 and figures["duplicates"] == 0 else 1


def _run(args, sb: SandboxServer, daemon: Daemon, counters: redis_lib.Redis, url: str) -> dict:
    n = args.messages
    # Warm up: workers start, every stream is polled once on an empty marketplace.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        tick()
        with session_scope() as s:
            ready = s.scalar(
                select(func.count())
                .select_from(m.PollCursor)
                .where(m.PollCursor.last_success_at.is_not(None))
            )
        if ready >= 3 * len(sb.accounts):
            break
        time.sleep(0.5)
    say(f"workers up; loading {n} buyer messages into the sandbox ({len(sb.accounts)} accounts)")
    per = [n // len(sb.accounts) + (1 if i < n % len(sb.accounts) else 0) for i in range(len(sb.accounts))]
    for acc, k in zip(sb.accounts, per, strict=True):
        sb.add_buyer_messages(k, acc.name)
    expected = {row["id"] for row in sb.messages() if row["sender"] not in ("seller", "system")}
    counters.delete(instrument.SQL_KEY, instrument.TASKS_KEY, instrument.DECIDED_KEY)
    started = time.monotonic()
    wall_start = time.time()
    last_report = started
    decided = 0
    next_tick = started
    while time.monotonic() - started < args.timeout:
        if time.monotonic() >= next_tick:
            tick()  # at beat's pace (the poll interval): faster only piles duplicate polls on the queue
            next_tick = time.monotonic() + 1.0
        stored, decided = _decided()
        if decided >= len(expected):
            break
        if time.monotonic() - last_report >= 5:
            say(f"  {time.monotonic() - started:6.1f}s: {stored} stored, {decided} decided")
            last_report = time.monotonic()
        time.sleep(0.25)
    elapsed = time.monotonic() - started
    time.sleep(0.5)  # the last tasks' counters land after their commit
    rss = daemon.peak_rss_mb()
    sql = int(counters.get(instrument.SQL_KEY) or 0)
    done_at = {int(k): float(v) for k, v in counters.hgetall(instrument.DECIDED_KEY).items()}
    with session_scope() as s:
        stored_ids = set(s.scalars(select(m.Message.external_id).where(m.Message.direction == "buyer")))
        rows = s.execute(
            select(m.Message.id, m.Message.created_at).where(m.Message.direction == "buyer")
        ).all()
        decisions = s.scalar(
            select(func.count()).select_from(m.Decision).where(m.Decision.message_id.is_not(None))
        )
        decided_msgs = s.scalar(
            select(func.count(func.distinct(m.Decision.message_id))).where(m.Decision.message_id.is_not(None))
        )
        drafts = s.scalar(select(func.count()).select_from(m.Draft))
        outbox = s.scalar(select(func.count()).select_from(m.Outbox))
        skipped = s.scalar(
            select(func.count())
            .select_from(m.Message)
            .where(m.Message.direction == "buyer", m.Message.triage_state == "skipped")
        )
        quarantined = s.scalar(select(func.count()).select_from(m.Quarantine))
    latencies = [
        done_at[mid] - created.timestamp() for mid, created in rows if mid in done_at and created is not None
    ]
    lost = len(expected - stored_ids) + max(0, len(expected) - decided_msgs - quarantined)
    duplicates = decisions - decided_msgs
    rate = decided / elapsed if elapsed else 0.0
    say(
        f"drained {decided}/{len(expected)} messages in {elapsed:.1f}s: {rate:.0f} messages/s "
        f"({decisions} decisions, {drafts} drafts, {outbox} outbox rows, {skipped} suppressed, "
        f"{quarantined} quarantined)"
    )
    say(
        f"latency fetched -> draft committed: p50 {percentile(latencies, 50):.2f}s, "
        f"p95 {percentile(latencies, 95):.2f}s ({len(latencies)} samples)"
    )
    per_msg = sql / decided if decided else 0.0
    say(f"SQL statements: {sql} ({per_msg:.1f} per message, all worker processes, polls included)")
    say(
        "peak RSS per worker process (MB): "
        + ", ".join(f"{pid}: {mb:.0f}" for pid, mb in sorted(rss.items()))
    )
    say(f"raw baseline: COPY of {n} x (message, decision, draft) rows ...")
    raw = raw_baseline(url, n)
    say(f"raw baseline: {raw:.0f} messages/s (3 rows each); pipeline/baseline = {rate / raw:.4f}")
    del wall_start
    return {
        "messages": decided,
        "messages_per_s": round(rate, 1),
        "p50_latency_s": round(percentile(latencies, 50), 3),
        "p95_latency_s": round(percentile(latencies, 95), 3),
        "sql_per_message": round(per_msg, 1),
        "peak_rss_mb": round(max(rss.values(), default=0.0), 1),
        "raw_rows_per_s": round(raw, 1),
        "ratio": round(rate / raw, 5),
        "duplicates": duplicates,
        "lost": lost,
    }


if __name__ == "__main__":
    raise SystemExit(main())
