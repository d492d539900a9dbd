"""The sandbox marketplace server: IOP gateway, 17TRACK and an admin API on one local port.

    with SandboxServer(seed=1, port=0, speed=0) as sb:
        sb.add_buyer_messages(5)
        connector = SandboxConnector(sb.account_ref())
        ...
        assert sb.duplicate_sends() == 0

Routes: `POST /sync` (business calls), `POST /rest/auth/token/refresh`, `POST /track/v2.2/<op>`,
and the admin endpoints under `/_sandbox/` (JSON) for other processes:
`GET clock|ledger|faults|accounts|state|messages`, `POST clock|faults|generate`.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from connectors.base import AccountRef
from connectors.sandbox import iop, track17
from connectors.sandbox.clock import SandboxClock
from connectors.sandbox.faults import Faults
from connectors.sandbox.ledger import Ledger
from connectors.sandbox.world import Account, World

log = logging.getLogger(__name__)

DEFAULT_17TOKEN = "sandbox-17token"
MAX_BODY = 1_000_000


class _Drop(Exception):
    """Close the connection without answering (the "answer lost" fault)."""


class SandboxServer:
    """A seeded, fault-injecting AliExpress + 17TRACK marketplace on a local port."""

    def __init__(
        self,
        seed: int = 1,
        port: int = 0,
        host: str = "127.0.0.1",
        *,
        accounts: int = 2,
        start: datetime | None = None,
        speed: float = 1.0,
        orders: int = 0,
        token_17track: str = DEFAULT_17TOKEN,
    ) -> None:
        self.seed = seed
        self.host = host
        self.clock = SandboxClock(start, speed)
        self.world = World(seed, accounts)
        self.world.setup(self.clock.now())
        self.ledger = Ledger()
        self.faults = Faults(seed)
        self.tracks = track17.TrackRegistry()
        self.token_17track = token_17track
        self._stopping = threading.Event()
        self._httpd = _HTTPServer((host, port), _Handler)
        self._httpd.sandbox = self
        self._thread: threading.Thread | None = None
        self._traffic: threading.Thread | None = None
        if orders:
            for account in self.world.accounts.values():
                self.world.add_orders(account, orders, self.clock.now())

    # ------------------------------------------------------------------ lifecycle

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> SandboxServer:
        if self._thread is None:
            # A short poll interval keeps stop() quick (shutdown waits for the loop to look).
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="sandbox-http",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; requests sleeping in a fault wake up and finish."""
        self._stopping.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        if self._traffic is not None:
            self._traffic.join(timeout=5)
            self._traffic = None
        self._httpd.server_close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`, returning early (True) when the server stops."""
        return self._stopping.wait(seconds)

    # ------------------------------------------------------------------ driving it

    def now(self) -> datetime:
        return self.clock.now()

    def advance(
        self, *, days: float = 0, hours: float = 0, minutes: float = 0, seconds: float = 0
    ) -> datetime:
        """Move simulated time forward: parcels move, protections run out, orders complete."""
        return self.clock.advance(timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds))

    @property
    def accounts(self) -> list[Account]:
        return list(self.world.accounts.values())

    def add_account(self, name: str | None = None) -> Account:
        return self.world.add_account(self.clock.now(), name)

    def credentials(self, account: str | None = None) -> dict[str, Any]:
        """What to store for an account: app key/secret, tokens, seller id and this gateway's URL."""
        with self.world.lock:
            return self.world.account(account).credentials(self.url)

    def account_ref(
        self, account: str | None = None, id: int = 1, settings: dict[str, Any] | None = None
    ) -> AccountRef:
        """An AccountRef for SandboxConnector pointing at this server."""
        name = self.world.account(account).name
        return AccountRef(
            id=id,
            marketplace="sandbox",
            name=name,
            credentials=self.credentials(name),
            settings=settings or {},
        )

    def add_orders(self, n: int, account: str | None = None, *, fresh: bool = False) -> list[str]:
        """`n` orders for an account (default: the first): a backdated mix of states, or placed now."""
        return self.world.add_orders(self.world.account(account), n, self.clock.now(), fresh=fresh)

    def add_buyer_messages(
        self, n: int, account: str | None = None, situations: list[str] | None = None
    ) -> list[str]:
        """`n` buyer messages across the playbook's situations and six languages; returns message ids."""
        return self.world.add_buyer_messages(self.world.account(account), n, self.clock.now(), situations)

    def open_disputes(self, n: int, account: str | None = None) -> list[str]:
        """`n` dispute openings on fitting orders; returns issue ids."""
        return self.world.open_disputes(self.world.account(account), n, self.clock.now())

    def duplicate_sends(self) -> int:
        """Messages the seller sent more than once (same text to the same conversation)."""
        return self.ledger.duplicate_sends()

    def messages(self, account: str | None = None) -> list[dict[str, Any]]:
        """Every conversation message with the generator's ground truth (situation, language)."""
        now = self.clock.now()
        out = []
        with self.world.lock:
            accounts = [self.world.account(account)] if account else self.accounts
            for acc in accounts:
                for channel in acc.channels.values():
                    for m in channel.messages:
                        if m.at <= now:
                            out.append(
                                {
                                    "account": acc.name,
                                    "id": m.id,
                                    "channel_id": m.channel_id,
                                    "order_id": m.order_id,
                                    "at": m.at.isoformat(),
                                    "sender": "seller"
                                    if m.sender_login_id == acc.seller_login_id
                                    else m.message_type,
                                    "situation": m.situation,
                                    "language": m.language,
                                    "content": m.content,
                                }
                            )
        return out

    def state(self) -> dict[str, Any]:
        now = self.clock.now()
        with self.world.lock:
            per_account = {}
            for acc in self.accounts:
                per_account[acc.name] = {
                    "orders": len(self.world.visible_orders(acc, now)),
                    "conversations": len(acc.channels),
                    "messages": sum(len(self.world.visible_messages(c, now)) for c in acc.channels.values()),
                    "disputes": sum(1 for i in acc.issues.values() if i.opened_at <= now),
                    "revoked": self.faults.is_revoked(acc.name),
                }
        return {
            "now": now.isoformat(),
            "speed": self.clock.speed,
            "accounts": per_account,
            "ledger": len(self.ledger),
            "duplicate_sends": self.duplicate_sends(),
        }

    def start_traffic(
        self,
        messages_per_minute: float = 2.0,
        orders_per_minute: float = 1.0,
        disputes_per_minute: float = 0.2,
    ) -> None:
        """Generate new orders, messages and disputes in the background (real minutes), for the demo."""
        if self._traffic is not None:
            raise RuntimeError("traffic is already running")
        rates = {
            "messages": messages_per_minute,
            "orders": orders_per_minute,
            "disputes": disputes_per_minute,
        }
        self._traffic = threading.Thread(
            target=self._run_traffic, args=(rates,), name="sandbox-traffic", daemon=True
        )
        self._traffic.start()

    def _run_traffic(self, rates: dict[str, float]) -> None:
        owed = dict.fromkeys(rates, 0.0)
        tick = 1.0
        while not self._stopping.wait(tick):
            for kind, per_minute in rates.items():
                owed[kind] += per_minute * tick / 60
                while owed[kind] >= 1:
                    owed[kind] -= 1
                    with self.world.lock:
                        account = self.world.rng.choice(self.accounts).name
                    if kind == "messages":
                        self.add_buyer_messages(1, account)
                    elif kind == "orders":
                        self.add_orders(1, account, fresh=True)
                    else:
                        self.open_disputes(1, account)

    # ------------------------------------------------------------------ serving

    def serve_sync(self, params: dict[str, str]) -> tuple[int, dict[str, Any], bool]:
        """One /sync call: (status, body, drop_answer)."""
        request_id = uuid.uuid4().hex[:16]
        method = params.get("method", "")
        now = self.clock.now()
        try:
            account = iop.authenticate(self.world, self.faults, params, method, now)
            if self.faults.draw("throttle", method):
                seconds = self.faults.ban_seconds
                raise iop.IopError(
                    "ISP",
                    "ApiCallLimit",
                    f"App Call Limited: This ban will last for {seconds} more seconds",
                    429,
                )
            if self.faults.draw("error_5xx", method):
                raise iop.IopError(
                    "SYSTEM", "ServiceUnavailable", "The service is temporarily unavailable", 500
                )
            if self.faults.draw("slow", method):
                self.wait(self.faults.slow_seconds)
            call = iop.Call(self.world, account, params, now, self.faults, self.ledger, method, request_id)
            with self.world.lock:
                result = iop.HANDLERS[method](call)
        except iop.IopError as exc:
            return exc.status, exc.body(request_id), False
        body = {method.replace(".", "_") + "_response": {"result": result, "request_id": request_id}}
        drop = method in iop.WRITE_METHODS and self.faults.draw("lose_answer", method)
        if drop:
            for entry in self.ledger.entries():
                if entry.get("request_id") == request_id:
                    self.ledger.annotate(entry["seq"], answer="lost")
        elif self.faults.draw("timeout", method):
            self.wait(self.faults.timeout_seconds)
        return 200, body, drop

    def serve_rest(self, api_path: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        request_id = uuid.uuid4().hex[:16]
        now = self.clock.now()
        try:
            if api_path != "/auth/token/refresh":
                raise iop.IopError("ISV", "InvalidApiPath", f"The specified API {api_path!r} does not exist")
            account = iop.authenticate(self.world, self.faults, params, api_path, now)
            body = iop.refresh_token(self.world, self.faults, account, params, now)
        except iop.IopError as exc:
            return exc.status, exc.body(request_id)
        body["request_id"] = request_id
        return 200, body

    def serve_17track(self, operation: str, token: str | None, payload: Any) -> tuple[int, dict[str, Any]]:
        if token != self.token_17track:
            return 401, {
                "code": -18010002,
                "data": {"errors": [{"code": -18010002, "message": "Invalid access key."}]},
            }
        if operation not in track17.OPERATIONS:
            return 404, {
                "code": -18010001,
                "data": {"errors": [{"code": -18010001, "message": "Unknown operation."}]},
            }
        if not isinstance(payload, list):
            return 200, {
                "code": -18010013,
                "data": {"errors": [{"code": -18010013, "message": "Submitted data is invalid."}]},
            }
        method = f"17track.{operation}"
        if self.faults.draw("throttle", method):
            return 429, {
                "code": 429,
                "data": {"errors": [{"code": 429, "message": "Too many requests, retry later."}]},
            }
        if self.faults.draw("error_5xx", method):
            return 500, {
                "code": -18010003,
                "data": {"errors": [{"code": -18010003, "message": "Internal error, retry later."}]},
            }
        if self.faults.draw("slow", method):
            self.wait(self.faults.slow_seconds)
        return 200, self.tracks.handle(self.world, operation, payload, self.clock.now())

    def serve_admin(self, verb: str, path: str, payload: dict[str, Any]) -> tuple[int, Any]:
        name = path.removeprefix("/_sandbox/").strip("/")
        if verb == "GET":
            views = {
                "clock": lambda: {"now": self.clock.now().isoformat(), "speed": self.clock.speed},
                "ledger": lambda: {
                    "entries": self.ledger.entries(),
                    "duplicate_sends": self.duplicate_sends(),
                },
                "faults": self.faults.snapshot,
                "accounts": lambda: [
                    {"name": a.name, "credentials": self.credentials(a.name)} for a in self.accounts
                ],
                "state": self.state,
                "messages": self.messages,
            }
            if name in views:
                return 200, views[name]()
            return 404, {"error": f"unknown admin view {name!r}"}
        if name == "clock":
            if "speed" in payload:
                self.clock.set_speed(float(payload["speed"]))
            delta = {k: float(payload[k]) for k in ("days", "hours", "minutes", "seconds") if k in payload}
            if delta:
                self.advance(**delta)
            return 200, {"now": self.clock.now().isoformat(), "speed": self.clock.speed}
        if name == "faults":
            if payload.get("clear"):
                self.faults.clear()
            self.faults.set(
                **payload.get("rates", {}),
                **{k: payload[k] for k in ("ban_seconds", "slow_seconds", "timeout_seconds") if k in payload},
            )
            for account in payload.get("revoke", []):
                self.world.account(account)
                self.faults.revoke_token(account)
            for account in payload.get("restore", []):
                self.faults.restore_token(account)
            for forced in payload.get("force", []):
                self.faults.force(forced["kind"], int(forced.get("count", 1)), forced.get("method"))
            return 200, self.faults.snapshot()
        if name == "generate":
            account = payload.get("account")
            out = {
                "orders": self.add_orders(
                    int(payload.get("orders", 0)), account, fresh=bool(payload.get("fresh"))
                ),
                "messages": self.add_buyer_messages(
                    int(payload.get("messages", 0)), account, payload.get("situations")
                ),
                "disputes": self.open_disputes(int(payload.get("disputes", 0)), account),
            }
            return 200, out
        return 404, {"error": f"unknown admin action {name!r}"}


def _loads(raw: bytes) -> Any:
    """JSON from a request body; nesting deeper than the decoder goes is a ValueError like any bad JSON."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    sandbox: SandboxServer


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    server_version = "SellerdeskSandbox/1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        log.debug("sandbox %s - %s", self.address_string(), format % args)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ValueError("request body too large")
        return self.rfile.read(length) if length else b""

    def _answer(self, status: int, body: Any) -> None:
        data = json.dumps(body, ensure_ascii=False, default=str).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json;charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout fault): nothing to tell it

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        self._dispatch("POST")

    def _dispatch(self, verb: str) -> None:
        sandbox = self.server.sandbox
        parts = urlsplit(self.path)
        path = parts.path
        try:
            raw = self._body() if verb == "POST" else b""
            if path.startswith("/_sandbox/"):
                payload = _loads(raw) if raw else {}
                status, body = sandbox.serve_admin(verb, path, payload if isinstance(payload, dict) else {})
                self._answer(status, body)
                return
            if path.startswith("/track/v2.2/"):
                try:
                    payload = _loads(raw or b"null")
                except ValueError:
                    payload = None
                status, body = sandbox.serve_17track(
                    path.rsplit("/", 1)[-1], self.headers.get("17token"), payload
                )
                self._answer(status, body)
                return
            params = dict(parse_qsl(parts.query, keep_blank_values=True))
            if raw:
                params.update(parse_qsl(raw.decode(), keep_blank_values=True))
            if path == "/sync":
                status, body, drop = sandbox.serve_sync(params)
                if drop:
                    raise _Drop
                self._answer(status, body)
            elif path.startswith("/rest/"):
                self._answer(*sandbox.serve_rest(path.removeprefix("/rest"), params))
            else:
                self._answer(404, {"error": f"no route {path}"})
        except _Drop:
            self.close_connection = True
        except (ValueError, KeyError, TypeError, OverflowError) as exc:
            # The request itself is malformed (bad UTF-8, numbers too big for a date, wrong types).
            self._answer(400, {"error": str(exc)[:500]})
        except Exception as exc:  # noqa: BLE001 - a sandbox bug must still answer, never drop the client
            log.exception("sandbox: %s %s failed", verb, path)
            self._answer(500, {"error": f"sandbox failure: {type(exc).__name__}"})
