"""`python -m bench.chaos --messages N --kills K`: exactly once under faults, killed workers, restarted services.

The sandbox injects faults into 30% of calls (5xx, 429 with a ban, timeouts, lost answers); once
messages flow, a random worker is SIGKILLed every few seconds (and restarted, as a supervisor would);
Redis is restarted once and PostgreSQL once mid-run; meanwhile an "agent" approves pending drafts and
money actions. At the end the sandbox's ledger is compared with the database. Exit status 1 unless duplicates,
double_actions and lost are all 0.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select

from bench.common import (
    add_accounts,
    emit,
    install_settings,
    private_schema,
    redis_db_url,
    say,
    stop_cleanly_on_sigterm,
)
from bench.harness import Daemon, daemon_env, flush_broker, settled, tick
from connectors.sandbox.server import SandboxServer
from worker import models as m
from worker.db import session_scope, utcnow
from worker.drafts import DraftError, approve_action, approve_draft

BROKER_DB = 15
POLL_CONCURRENCY = 3
ACTION_KINDS = ("extend_protection", "refund_offer", "refund_agree")
REDIS_START = [
    "redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379", "--save", "",
    "--appendonly", "no", "--dir", "/var/lib/redis", "--logfile", "/var/log/redis/ci.log",
]  # fmt: skip


def restart_redis() -> None:
    """Stop the local Redis without saving (queued tasks are lost) and start it again."""
    subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", "6379", "shutdown", "nosave"], check=False, timeout=30
    )
    time.sleep(1.0)
    subprocess.run(REDIS_START, check=True, timeout=30)


def restart_postgres() -> None:
    """Restart the local PostgreSQL cluster (every connection of every process breaks)."""
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"], check=True, timeout=120
    )


def guarded(step: Callable[[], object], default: object = None) -> object:
    """Run one step of the driving loop; a service being restarted makes it a no-op, not a crash."""
    try:
        return step()
    except Exception as exc:  # noqa: BLE001 - Redis/PostgreSQL restarting: try again next round
        say(f"  (skipped a step: {type(exc).__name__}: {str(exc).splitlines()[0][:120]})")
        return default


def approve_everything() -> int:
    """What an agent does: approve every pending draft and every proposed action (money confirmed)."""
    now = utcnow()
    done = 0
    with session_scope() as s:
        drafts = list(s.scalars(select(m.Draft.id).where(m.Draft.state == "pending").limit(200)))
        actions = list(s.scalars(select(m.ProposedAction.id).where(m.ProposedAction.state == "proposed")))
    for draft_id in drafts:
        try:
            with session_scope() as s:
                approve_draft(s, draft_id, actor="bench", reviewer_id=None, now=now)
            done += 1
        except DraftError:
            pass  # superseded or changed meanwhile
    for action_id in actions:
        try:
            with session_scope() as s:
                approve_action(
                    s, action_id, actor="bench", reviewer_id=None, money_cap=Decimal("100000"), now=now,
                    confirm=True, override_reason="chaos bench approves everything",
                )  # fmt: skip
            done += 1
        except DraftError:
            pass
    return done


def buyer_messages(sb: SandboxServer) -> set[str]:
    return {row["id"] for row in sb.messages() if row["sender"] not in ("seller", "system")}


def any_stored() -> bool:
    with session_scope() as s:
        return s.scalar(select(m.Message.id).where(m.Message.direction == "buyer").limit(1)) is not None


def stored_buyer_ids() -> set[str]:
    with session_scope() as s:
        return set(s.scalars(select(m.Message.external_id).where(m.Message.direction == "buyer")))


def progress() -> str:
    """One line of where the run stands: stored, waiting for triage, sends and actions still open."""
    with session_scope() as s:

        def count(model, *where) -> int:
            return s.scalar(select(func.count()).select_from(model).where(*where)) or 0

        stored = count(m.Message, m.Message.direction == "buyer")
        untriaged = count(m.Message, m.Message.triage_state.in_(["new", "processing"]))
        sends = Counter(
            s.scalars(select(m.Outbox.state).where(m.Outbox.state.in_(["pending", "sending", "uncertain"])))
        )
        actions = count(m.ProposedAction, m.ProposedAction.state.in_(["approved", "executing", "uncertain"]))
    return (
        f"{stored} buyer messages stored, {untriaged} waiting for triage, "
        f"open sends {dict(sends) or 0}, open actions {actions}"
    )


def compare(sb: SandboxServer) -> dict[str, int]:
    """The sandbox's ledger against the database."""
    expected = buyer_messages(sb)
    with session_scope() as s:
        stored = set(s.scalars(select(m.Message.external_id).where(m.Message.direction == "buyer")))
        per_message = Counter(
            s.scalars(select(m.Decision.message_id).where(m.Decision.message_id.is_not(None))).all()
        )
        undecided = s.scalar(
            select(func.count())
            .select_from(m.Message)
            .where(m.Message.direction == "buyer", ~m.Message.id.in_(select(m.Decision.message_id).where(
                m.Decision.message_id.is_not(None))))
        )  # fmt: skip
        quarantined = s.scalar(select(func.count()).select_from(m.Quarantine))
        sent_ids = list(s.scalars(select(m.Outbox.marketplace_message_id).where(m.Outbox.state == "sent")))
        repeats = s.execute(
            select(m.Outbox.conversation_id, m.Outbox.body, m.Draft.auto)
            .join(m.Draft, m.Draft.id == m.Outbox.draft_id)
            .where(m.Outbox.state == "sent", m.Outbox.conversation_id.is_not(None))
        ).all()
        open_sends = s.scalar(
            select(func.count())
            .select_from(m.Outbox)
            .where(m.Outbox.state.in_(["pending", "sending", "uncertain"]))
        )
        executed = s.scalar(
            select(func.count()).select_from(m.ProposedAction).where(m.ProposedAction.state == "done")
        )
    # Each message the marketplace received must belong to exactly one send marked sent: a delivery no
    # sent row owns is a duplicate (or a send we lost track of, just as bad); a sent row whose message
    # the marketplace never received is lost.
    received = Counter(e["message_id"] for e in sb.ledger.entries("message"))
    marked = Counter(sent_ids)
    dup_sends = sum((received - marked).values())
    lost_sends = sum((marked - received).values())
    # The same text twice automatically to one conversation (a human may approve a repeat; a machine may not).
    by_text = Counter((c, b) for c, b, _ in repeats)
    auto_repeats = sum(
        max(0, [a for c, b, a in repeats if (c, b) == key].count(True) - 1)
        for key, n in by_text.items()
        if n > 1
    )
    double_decisions = sum(n - 1 for n in per_message.values() if n > 1)
    ledger_actions = [e for kind in ACTION_KINDS for e in sb.ledger.entries(kind)]
    doubled = Counter(e["kind"] for e in ledger_actions if e["copies"] > 1)
    if doubled:
        say(f"  actions received more than once, by kind: {dict(doubled)}")
    if dup_sends or lost_sends or open_sends or undecided or expected - stored:
        explain(received - marked, marked - received, expected - stored, sb)
    return {
        "messages": len(expected),
        "decisions": sum(per_message.values()),
        "sent": len(sent_ids),
        "duplicates": dup_sends + auto_repeats + double_decisions,
        "double_actions": sum(1 for e in ledger_actions if e["copies"] > 1),
        "lost": len(expected - stored) + undecided + lost_sends + open_sends,
        "quarantined": quarantined,
        "actions_executed": executed,
        "actions_in_ledger": len(ledger_actions),
    }


def explain(unowned: Counter, unreceived: Counter, unstored: set[str], sb: SandboxServer) -> None:
    """Say which rows make a bad count, with their history, so a failed run can be diagnosed."""
    with session_scope() as s:
        for row in s.scalars(
            select(m.Outbox).where(
                m.Outbox.state.in_(["pending", "sending", "uncertain"])
                | m.Outbox.marketplace_message_id.in_(list(unreceived))
            )
        ):
            say(
                f"  outbox {row.id}: state={row.state} attempts={row.attempts} claimed_at={row.claimed_at} "
                f"not_before={row.not_before} marketplace_id={row.marketplace_message_id} "
                f"last_error={row.last_error!r}"
            )
        for q in s.scalars(select(m.Quarantine)):
            say(f"  quarantined {q.kind} {q.object_id} after {q.attempts} attempts: {q.reason[:200]!r}")
        undecided = s.execute(
            select(m.Message.id, m.Message.triage_state).where(
                m.Message.direction == "buyer",
                ~m.Message.id.in_(select(m.Decision.message_id).where(m.Decision.message_id.is_not(None))),
            )
        ).all()
        for message_id, state in undecided:
            say(f"  message {message_id} has no decision (triage_state={state})")
    for marketplace_id, n in unowned.items():
        say(f"  the marketplace received {marketplace_id} {n} time(s) more than a sent row says")
        for e in sb.ledger.entries("message"):
            if e["message_id"] == marketplace_id:
                say(
                    f"    ledger: { ({k: v for k, v in e.items() if k != 'content'}) } text {e['content'][:80]!r}"
                )
                with session_scope() as s:
                    rows = s.scalars(
                        select(m.Outbox).where(m.Outbox.body == e["content"]).order_by(m.Outbox.id)
                    )
                    for row in rows:
                        say(
                            f"    outbox {row.id} (same text): state={row.state} attempts={row.attempts} "
                            f"marketplace_id={row.marketplace_message_id} last_error={row.last_error!r}"
                        )
    for external_id in sorted(unstored):
        say(f"  buyer message {external_id} was never stored")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=2000)
    p.add_argument("--kills", type=int, default=10)
    p.add_argument("--kill-every", type=float, default=4.0, help="seconds between two kills")
    p.add_argument("--no-restarts", action="store_true", help="do not restart Redis and PostgreSQL")
    p.add_argument("--timeout", type=float, default=2400.0, help="give up (and fail) after this many seconds")
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)
    stop_cleanly_on_sigterm()
    rng = random.Random(args.seed)
    broker = redis_db_url(BROKER_DB)
    flush_broker(broker)
    with tempfile.TemporaryDirectory(prefix="sd-chaos-") as tmp, private_schema("bench_chaos") as url:
        data_dir = Path(tmp) / "data"
        settings = install_settings(data_dir, url, broker)
        # Real time: the connector reads a sent message's id back "since my clock", as on the marketplace.
        sb = SandboxServer(seed=args.seed, port=0, accounts=2, speed=1.0).start()
        # One page per poll: a batch commits in seconds even under faults, well inside the poll lease.
        add_accounts(sb, settings, http_timeout_seconds=1.5, page_size=100, max_pages_per_call=1)
        env = daemon_env(data_dir, url, broker, SELLERDESK_POLL_LEASE_SECONDS="30")
        daemon = Daemon(env=env, log_dir=Path(tmp) / "logs")
        # As in production (docker-compose.yml): polls on a worker of their own, one process per few
        # streams, since a poll under faults mostly waits; triage and sending on two others.
        daemon.start_worker("sellerdesk.poll", POLL_CONCURRENCY)
        daemon.start_worker("sellerdesk,sellerdesk.send")
        daemon.start_worker("sellerdesk,sellerdesk.send")
        try:
            figures = _run(args, rng, sb, daemon)
        finally:
            daemon.stop()
            sb.stop()
            guarded(lambda: flush_broker(broker))
    emit(figures)
    return 0 if figures["duplicates"] == 0 and figures["double_actions"] == 0 and figures["lost"] == 0 else 1


def _run(args, rng: random.Random, sb: SandboxServer, daemon: Daemon) -> dict[str, int]:
    sb.faults.set(
        error_5xx=0.10, throttle=0.08, timeout=0.04, lose_answer=0.08, ban_seconds=1, timeout_seconds=2.0
    )
    waves = 10
    per_wave = [args.messages // waves + (1 if i < args.messages % waves else 0) for i in range(waves)]
    disputes = max(1, args.messages // 100)
    kills = 0
    started = time.monotonic()
    # Redis goes down after a third of the kills, PostgreSQL after two thirds: under load, between kills.
    restarts = [] if args.no_restarts else [("redis", args.kills / 3), ("postgres", 2 * args.kills / 3)]
    next_kill = started + args.kill_every
    next_tick = started
    say(f"chaos: {args.messages} messages in {waves} waves, {disputes} disputes, {args.kills} kills, "
        f"30% faults{'' if args.no_restarts else ', Redis and PostgreSQL restarted once each'}")  # fmt: skip
    wave = 0
    quiet = False
    last_report = started
    while time.monotonic() - started < args.timeout:
        now = time.monotonic()
        if wave < waves:
            account = sb.accounts[wave % len(sb.accounts)].name
            sb.add_buyer_messages(per_wave[wave], account)
            if wave % 3 == 0:
                sb.open_disputes(max(1, disputes // 4), account)
            wave += 1
        if restarts and kills >= restarts[0][1] and kills > 0:
            name, _ = restarts.pop(0)
            say(f"  {now - started:6.1f}s: restarting {name}")
            guarded(restart_redis if name == "redis" else restart_postgres)
        # Kills start once messages flow, so each one lands on work in flight rather than on idle workers.
        if kills < args.kills and now >= next_kill and guarded(any_stored, False):
            victim = rng.randrange(len(daemon.workers))
            proc = daemon.workers[victim]
            queues = "sellerdesk.poll" if victim == 0 else "sellerdesk,sellerdesk.send"
            daemon.kill_worker(proc)
            daemon.workers[victim] = _restart(daemon, queues)
            kills += 1
            next_kill = now + args.kill_every
            say(f"  {now - started:6.1f}s: SIGKILLed worker {proc.pid} ({queues}), kill {kills}/{args.kills}")
        if now >= next_tick:
            # At beat's pace: ticking faster only piles duplicate poll tasks onto the poll queue.
            guarded(tick)
            next_tick = now + 2.0
        guarded(approve_everything)
        if wave >= waves and kills >= args.kills and not restarts:
            done = guarded(lambda: buyer_messages(sb) <= stored_buyer_ids() and settled(), False)
            if done:
                # Settled twice in a row, a few seconds apart: nothing was still in flight.
                time.sleep(3)
                guarded(tick)
                if guarded(lambda: buyer_messages(sb) <= stored_buyer_ids() and settled(), False):
                    quiet = True
                    break
        if now - last_report >= 10:
            last_report = now
            at = now - started
            say(f"  {at:6.1f}s: {guarded(progress, 'database unavailable')}")
        time.sleep(0.5)
    elapsed = time.monotonic() - started
    if not quiet:
        # Rows still in flight count as lost (and a delivery they own as a duplicate): nothing unproven passes.
        say(f"  did not settle within {args.timeout:.0f}s: what is still open is counted as lost")
    sb.faults.clear()
    figures = compare(sb)
    say(
        f"after {elapsed:.0f}s: {figures['messages']} messages, {figures['decisions']} decisions, "
        f"{figures['sent']} replies sent, {figures['actions_executed']} actions executed "
        f"({figures['actions_in_ledger']} in the ledger), {figures['quarantined']} quarantined; "
        f"faults injected {sb.faults.snapshot()['injected']}"
    )
    return {
        "messages": figures["messages"],
        "decisions": figures["decisions"],
        "sent": figures["sent"],
        "duplicates": figures["duplicates"],
        "double_actions": figures["double_actions"],
        "lost": figures["lost"],
        "kills": kills,
        "quarantined": figures["quarantined"],
        "settled": quiet,
        "seconds": round(elapsed, 1),
    }


def _restart(daemon: Daemon, queues: str):
    proc = daemon.start_worker(queues, POLL_CONCURRENCY if queues == "sellerdesk.poll" else None)
    daemon.workers.remove(proc)  # it takes the killed worker's place in the list
    return proc


if __name__ == "__main__":
    raise SystemExit(main())
