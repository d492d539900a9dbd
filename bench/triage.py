"""Decisions per second of the decision core on one core, reply rendering included, by stage.

    python -m bench.triage [--cases 5000] [--seed 1]

Builds a few thousand mixed cases (real buyer texts from the dev set in six languages, every tracking
state, disputes, all shipping methods), warms up, then times each stage of `Triage.decide` on the
same cases: classification, situation, policy (guards included) and rendering. Prints lines for
people and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from connectors import capabilities_for
from worker.policy.engine import buyer_preference, evaluate
from worker.policy.load import default_policy
from worker.render import default_renderer
from worker.triage.pipeline import Triage, classify_case, reply_context, reply_language_for
from worker.triage.situation import resolve_situation
from worker.triage.types import Case, TrackingStatus

DEV = Path(__file__).resolve().parents[1] / "tests" / "data" / "dev"
TRACKING = [None, *(status.value for status in TrackingStatus)]
METHODS = ["china_post_small_packet", "epacket", "aliexpress_standard", "dhl", "cainiao"]
COUNTRIES = ["US", "BR", "ES", "MX", "RU", "FR", "DE", "PT", "GB"]
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def texts() -> list[str]:
    out = []
    for path in sorted(DEV.glob("*.jsonl")):
        out += [json.loads(line)["text"] for line in path.open(encoding="utf-8")]
    return out


def make_cases(n: int, seed: int) -> list[Case]:
    """`n` varied cases built from real buyer texts and random order facts."""
    rng = random.Random(seed)
    pool = texts()
    cases = []
    for i in range(n):
        shipped = rng.choice([None, *range(1, 120)])
        status = "paid" if shipped is None else rng.choice(["shipped", "shipped", "delivered"])
        tracking = None if shipped is None else rng.choice(TRACKING)
        events = (
            []
            if tracking in (None, "not_found")
            else [
                {
                    "time": (NOW - timedelta(days=rng.randint(0, 10))).isoformat(),
                    "location": "Sort center",
                    "description": "Processed through facility",
                }
            ]
        )
        dispute = None
        if rng.random() < 0.15:
            dispute = {
                "reason": rng.choice(
                    ["Product not received", "Quality not as described", "ITEM_NOT_RECEIVED"]
                ),
                "opened_at": NOW.isoformat(),
                "buyer_request": rng.choice(["refund", "resend", None]),
            }
        total = f"{rng.randint(3, 200)}.{rng.randint(0, 99):02d}"
        cases.append(
            Case.model_validate(
                {
                    "id": f"b{i}",
                    "now": NOW.isoformat(),
                    "marketplace": rng.choice(["aliexpress", "aliexpress", "ebay"]),
                    "message": None if dispute and rng.random() < 0.3 else {"text": rng.choice(pool)},
                    "dispute": dispute,
                    "order": {
                        "id": str(8000000 + i),
                        "status": status,
                        "total": total,
                        "currency": "USD",
                        "buyer_name": rng.choice(["Ana", "Jean", None, "Иван", "Jürgen"]),
                        "buyer_country": rng.choice(COUNTRIES),
                        "paid_at": (NOW - timedelta(days=(shipped or 0) + 2)).isoformat(),
                        "shipped_at": (NOW - timedelta(days=shipped)).isoformat()
                        if shipped is not None
                        else None,
                        "shipping_method": rng.choice(METHODS),
                        "promised_delivery_days": rng.choice([None, None, 30, 45]),
                        "tracking_number": f"LP{i:09d}CN" if shipped is not None else None,
                        "items": [{"sku": "SKU-1", "title": "Summer dress", "quantity": 1, "price": total}],
                    },
                    "tracking": None
                    if tracking is None
                    else {
                        "status": tracking,
                        "last_event_at": events[0]["time"] if events else None,
                        "events": events,
                    },
                }
            )
        )
    return cases


def run(n: int, seed: int) -> dict[str, float]:
    policy = default_policy()
    engine = Triage(policy=policy, renderer=default_renderer(), shop_name="Bench shop")
    cases = make_cases(n, seed)
    caps = {m: capabilities_for(m) for m in ("aliexpress", "ebay")}
    threshold = policy.auto_send.confidence_threshold
    for case in cases[: min(300, n)]:  # warm-up: detector models, template compilation
        engine.decide(case, caps[case.marketplace])

    started = time.perf_counter()
    for case in cases:
        engine.decide(case, caps[case.marketplace])
    total = time.perf_counter() - started

    stages = dict.fromkeys(("classify", "situation", "policy", "render"), 0.0)
    for case in cases:
        t0 = time.perf_counter()
        cls, intent, _ = classify_case(case, threshold)
        t1 = time.perf_counter()
        situation = resolve_situation(case, policy)
        t2 = time.perf_counter()
        proposal = evaluate(case, cls, intent, situation, policy, caps[case.marketplace])
        t3 = time.perf_counter()
        language = reply_language_for(cls, case)
        ctx = reply_context(
            case, proposal, situation, policy, language, "Bench shop", buyer_preference(case, cls).prefers
        )
        engine.renderer.render_reply(proposal.template, ctx)
        t4 = time.perf_counter()
        stages["classify"] += t1 - t0
        stages["situation"] += t2 - t1
        stages["policy"] += t3 - t2
        stages["render"] += t4 - t3
    per_stage_us = {k: round(v / n * 1e6, 1) for k, v in stages.items()}
    return {
        "cases": n,
        "decisions_per_s": round(n / total, 1),
        "mean_us": round(total / n * 1e6, 1),
        "stage_us": per_stage_us,
        "slowest_stage": max(per_stage_us, key=per_stage_us.get),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    result = run(args.cases, args.seed)
    print(f"decision core, one process: {result['cases']} mixed cases in six languages, reply rendered")
    print(
        f"  {result['decisions_per_s']:.0f} decisions/s ({result['mean_us']:.0f} us per decision; aim: 5,000/s)"
    )
    for stage, us in sorted(result["stage_us"].items(), key=lambda kv: -kv[1]):
        print(f"  {stage:<10} {us:7.1f} us")
    print(f"  slowest stage: {result['slowest_stage']}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
