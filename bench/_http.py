"""What bench/load.py and bench/memory.py share: a production-like gunicorn on a seeded database, signed-in
users, the request mix, and latency statistics.

The server runs `gunicorn -c gunicorn.conf.py wsgi:app` from the repository (deploy/kisht-web.service) with
APP_ENV=production: a random SECRET_KEY, Redis for the rate limits, JSON logs to files (each request's line
carries its latency inside the app, read back by `server_latencies`), the production password cost. Two
settings differ from a real deployment, both because the harness is one machine talking plain HTTP:

* the API rate limits stay on (counted in Redis, as in production) but are raised far above what the harness
  sends (API_LIMIT_*); with `rate_limits=False` they are switched off (API_RATE_LIMITS_ENABLED=false);
* production session cookies are `Secure`; the clients send them over plain HTTP to 127.0.0.1 anyway
  (in production a TLS proxy sits in front).

Each client is one desk with four signed-in identities (a collector in the browser and in the API, the
branch manager, finance) and draws its next action from MIX, back to back, without think time.
"""
from __future__ import annotations

import itertools
import json
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import psutil
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SERVER = os.environ.get("KISHT_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
DEFAULT_PASSWORD = "Kisht-load-2026"
IST = ZoneInfo("Asia/Kolkata")
HIGH_LIMIT = "1000000 per minute"

# route name → (weight, action). Weights are relative; a "screen payment" is two requests (the form with
# its one-time key, then the post), an API payment is followed by a replay of the same request one time in ten.
MIX = {
    "collector worklist": 14,
    "loan page": 14,
    "screen payment": 8,
    "API payment": 8,
    "manager approvals inbox": 8,
    "manager home": 6,
    "finance dashboard": 6,
    "reconciliation dashboard": 4,
    "API loan list": 10,
    "API loan detail": 10,
    "healthz": 6,
}
ROUTES = {  # measured request → (what it is, its rule in the app's request log; None: not told apart there)
    "GET /collector/": ("collector worklist", "GET /collector/"),
    "GET /loans/<n>": ("loan page", "GET /loans/<number>"),
    "GET /loans/<n>/payments/new": ("payment form", "GET /loans/<number>/payments/new"),
    "POST /loans/<n>/payments": ("payment post (screen, cash)", "POST /loans/<number>/payments"),
    "POST /api/v1/payments": ("payment post (API, UPI)", "POST /api/v1/payments"),
    "POST /api/v1/payments (replay)": ("payment replay (API, same key)", None),
    "GET /approvals/": ("manager approvals inbox", "GET /approvals/"),
    "GET /manager/": ("manager home", "GET /manager/"),
    "GET /finance/": ("finance dashboard", "GET /finance/"),
    "GET /reconciliation/": ("reconciliation dashboard", "GET /reconciliation/"),
    "GET /api/v1/loans": ("API loan list (manager)", "GET /api/v1/loans"),
    "GET /api/v1/loans/<n>": ("API loan detail (collector)", "GET /api/v1/loans/<loan_number>"),
    "GET /healthz": ("healthz (floor)", "GET /healthz"),
}
PAYMENT_ROUTES = ("POST /loans/<n>/payments", "POST /api/v1/payments")


def server_arguments(parser, *, bind: str, seed: int) -> None:
    """The options every HTTP benchmark shares: the seeded database, where gunicorn listens, Redis for the
    rate limits and the aggregate cache, the users' password, the clients' random seed, the JSON output."""
    parser.add_argument("--database-url", default=f"{DEFAULT_SERVER}/kisht_load")
    parser.add_argument("--bind", default=bind)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/9", help="rate limits and aggregate cache")
    parser.add_argument("--password", default=DEFAULT_PASSWORD)
    parser.add_argument("--seed", type=int, default=seed, help="the clients' random choices")
    parser.add_argument("--json", metavar="FILE")


def say(message: str = "") -> None:
    print(message, flush=True)


# ---------------------------------------------------------------- the server

class Server:
    """gunicorn with the repository's gunicorn.conf.py, production settings, on a seeded database."""

    def __init__(self, database_url: str, *, bind: str, workers: int | None, threads: int | None,
                 max_requests: int | None, redis_url: str, rate_limits: bool = True, log_level: str = "INFO",
                 worker_class: str | None = None, read_niceness: int | None = None):
        self.bind, self.base = bind, f"http://{bind}"
        self.dir = Path(tempfile.mkdtemp(prefix="kisht-bench-"))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GUNICORN_", "API_LIMIT", "FLASK_"))}
        env.update({
            "APP_ENV": "production", "SECRET_KEY": secrets.token_hex(32), "DATABASE_URL": database_url,
            "REDIS_URL": redis_url, "LOG_OUTPUT": "files", "LOG_DIR": str(self.dir / "logs"), "LOG_LEVEL": log_level,
            "BACKUP_DIR": str(self.dir / "backups"), "EVIDENCE_DIR": str(self.dir / "evidence"),
            "PROMETHEUS_MULTIPROC_DIR": str(self.dir / "metrics"), "GUNICORN_BIND": bind,
            "API_RATE_LIMITS_ENABLED": "true" if rate_limits else "false",
            "API_LIMIT_LOGIN": HIGH_LIMIT, "API_LIMIT_LOGIN_IP": HIGH_LIMIT, "API_LIMIT_REFRESH": HIGH_LIMIT,
            "API_LIMIT_DEFAULT": HIGH_LIMIT,
        })
        for name, value in (("GUNICORN_WORKERS", workers), ("GUNICORN_THREADS", threads),
                            ("GUNICORN_MAX_REQUESTS", max_requests), ("GUNICORN_WORKER_CLASS", worker_class),
                            ("GUNICORN_READ_NICENESS", read_niceness)):
            if value is not None:
                env[name] = str(value)
        if max_requests == 0:
            env["GUNICORN_MAX_REQUESTS_JITTER"] = "0"
        self.env = env
        self.process: subprocess.Popen | None = None
        self.log_file = self.dir / "gunicorn.log"

    def start(self, timeout: float = 60) -> None:
        gunicorn = Path(sys.executable).with_name("gunicorn")
        self.process = subprocess.Popen(
            [str(gunicorn), "-c", str(ROOT / "gunicorn.conf.py"), "wsgi:app"], cwd=ROOT, env=self.env,
            stdout=self.log_file.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited ({self.process.returncode}):\n{self.log_file.read_text()[-3000:]}")
            try:
                if requests.get(self.base + "/healthz", timeout=2).status_code == 200 and \
                        len(self.workers()) >= int(self.env.get("GUNICORN_WORKERS", "1") or 1):
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"gunicorn did not answer /healthz in {timeout} s:\n{self.log_file.read_text()[-3000:]}")

    def workers(self) -> list[psutil.Process]:
        if self.process is None:
            return []
        try:
            return psutil.Process(self.process.pid).children()
        except psutil.NoSuchProcess:
            return []

    def settings(self) -> dict:
        """The gunicorn settings in effect (read from the config file with this environment)."""
        code = ("import runpy, json; c = runpy.run_path('gunicorn.conf.py'); "
                "print(json.dumps({k: c[k] for k in ('workers', 'worker_class', 'threads', 'timeout', 'keepalive', "
                "'max_requests', 'max_requests_jitter', 'read_niceness')}))")
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=self.env, capture_output=True, text=True)
        return json.loads(out.stdout) if out.returncode == 0 else {"error": out.stderr[-500:]}

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # the master only: workers finish their requests
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def app_log(self) -> Path:
        return self.dir / "logs" / "app.log"

    def log_offset(self) -> int:
        return self.app_log().stat().st_size if self.app_log().exists() else 0

    def server_latencies(self, start: int, end: int | None = None) -> dict[str, list[float]]:
        """latency_ms of each request line the app logged between two offsets, per "METHOD route"."""
        out: dict[str, list[float]] = defaultdict(list)
        path = self.app_log()
        if not path.exists():
            return out
        with path.open("rb") as f:
            f.seek(start)
            data = f.read() if end is None else f.read(end - start)
        for line in data.splitlines():
            if b'"latency_ms"' not in line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            out[f"{record.get('method')} {record.get('route')}"].append(float(record["latency_ms"]))
        return out

    def cleanup(self, keep: bool = False) -> None:
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- users and their sessions

def client_session(session: requests.Session | None = None) -> requests.Session:
    """A keep-alive session that, like a browser, sends a request again once when the server had just closed
    the idle connection it went out on (gunicorn's keepalive is 5 s). Only connection errors are retried, never
    an answer; every request of the harness may be repeated (GETs, and payments carry their idempotency key)."""
    session = session or requests.Session()
    retry = Retry(total=1, connect=1, read=1, status=0, other=0, allowed_methods=None, raise_on_status=False)
    session.mount("http://", HTTPAdapter(max_retries=retry, pool_maxsize=4))
    return session


class PlainHttpSession(requests.Session):
    """Sends the app's Secure cookies back over plain HTTP to the local server (production puts TLS in front)."""

    def request(self, *args, **kwargs):
        response = super().request(*args, **kwargs)
        for cookie in self.cookies:
            cookie.secure = False
        return response


def web_session() -> requests.Session:
    return client_session(PlainHttpSession())


CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
KEY_RE = re.compile(r'name="idempotency_key"[^>]*value="([^"]+)"')


class Failed(Exception):
    pass


def sign_in_web(base: str, username: str, password: str) -> requests.Session:
    s = web_session()
    page = s.get(base + "/login", timeout=30)
    token = CSRF_RE.search(page.text)
    if not token:
        raise Failed(f"no CSRF token on /login ({page.status_code})")
    r = s.post(base + "/login", data={"csrf_token": token.group(1), "username": username, "password": password},
               allow_redirects=False, timeout=60)
    if r.status_code != 302:
        raise Failed(f"sign-in of {username} answered {r.status_code}")
    return s


class ApiUser:
    """A JWT access token from /api/v1/auth/token, taken again before it expires."""

    def __init__(self, base: str, username: str, password: str):
        self.base, self.username, self.password = base, username, password
        self.session = client_session()
        self.token, self.expires = "", 0.0
        self.renew()

    def renew(self) -> None:
        r = self.session.post(self.base + "/api/v1/auth/token",
                              json={"username": self.username, "password": self.password}, timeout=60)
        if r.status_code != 201:
            raise Failed(f"API sign-in of {self.username} answered {r.status_code}: {r.text[:200]}")
        data = r.json()["data"]
        self.token, self.expires = data["access_token"], time.monotonic() + data["expires_in"] - 120

    def headers(self) -> dict:
        if time.monotonic() > self.expires:
            self.renew()
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Desk:
    """One client: a collector (browser and API), the collector's branch manager, a finance user."""

    index: int
    collector: str
    manager: str
    finance: str
    collector_web: requests.Session | None = None
    collector_api: ApiUser | None = None
    manager_web: requests.Session | None = None
    manager_api: ApiUser | None = None
    finance_web: requests.Session | None = None
    loans: list[str] = field(default_factory=list)
    # What each loan can still take (paise): its outstanding principal when the desk opened (payable is that
    # plus unpaid interest, less an advance, and overdue loans hold none), less what this run has paid in since.
    payable: dict[str, int] = field(default_factory=dict)


def desk_users(database_url: str, clients: int) -> list[tuple[str, str, str]]:
    """(collector, manager, finance) usernames for each client: collectors spread over the branches."""
    import psycopg
    from sqlalchemy import make_url

    u = make_url(database_url)
    with psycopg.connect(host=u.host or "127.0.0.1", port=u.port or 5432, user=u.username, password=u.password,
                         dbname=u.database) as conn:
        collectors = conn.execute("""
            SELECT c.username, m.username FROM users c JOIN users m ON m.branch_id = c.branch_id AND m.role = 'manager'
            WHERE c.role = 'collector' AND c.active
              AND EXISTS (SELECT 1 FROM loans l WHERE l.collector_id = c.id AND l.status = 'ACTIVE')
            ORDER BY row_number() OVER (PARTITION BY c.branch_id ORDER BY c.id), c.branch_id""").fetchall()
        finance = [r[0] for r in conn.execute(
            "SELECT username FROM users WHERE role = 'finance' AND active ORDER BY id").fetchall()]
    if len(collectors) < clients or not finance:
        raise SystemExit(f"the database has {len(collectors)} collectors with loans and {len(finance)} finance users: "
                         f"not enough for {clients} clients (seed it with bench/seed.py)")
    return [(collectors[i][0], collectors[i][1], finance[i % len(finance)]) for i in range(clients)]


def open_desks(base: str, database_url: str, clients: int, password: str) -> list[Desk]:
    """Sign every user in (browser and API), and find each collector's active loans through the API."""
    desks = [Desk(i, *users) for i, users in enumerate(desk_users(database_url, clients))]
    errors: list[str] = []

    def open_one(desk: Desk) -> None:
        try:
            desk.collector_web = sign_in_web(base, desk.collector, password)
            desk.manager_web = sign_in_web(base, desk.manager, password)
            desk.finance_web = sign_in_web(base, desk.finance, password)
            desk.collector_api = ApiUser(base, desk.collector, password)
            desk.manager_api = ApiUser(base, desk.manager, password)
            for page in (1, 2):  # the worklist's first 200 active loans (most overdue first)
                r = desk.collector_api.session.get(base + "/api/v1/loans", headers=desk.collector_api.headers(),
                                                   params={"status": "ACTIVE", "per_page": 100, "page": page}, timeout=60)
                if r.status_code != 200:
                    raise Failed(f"loan list for {desk.collector}: {r.status_code} {r.text[:200]}")
                for row in r.json()["data"]:
                    if row["overdue_amount"] in ("0", "0.00"):  # may hold an advance, which payable nets off
                        continue
                    rupees, _, paise = row["outstanding_principal"].partition(".")
                    desk.payable[row["loan_number"]] = int(rupees) * 100 + int((paise + "00")[:2])
                desk.loans += [n for n in desk.payable if n not in desk.loans]
            if not any(v >= MAX_AMOUNT_PAISE for v in desk.payable.values()):
                raise Failed(f"{desk.collector} has no active loan that can take ₹{MAX_AMOUNT_PAISE // 100:,}")
        except (Failed, requests.RequestException) as problem:
            errors.append(f"{desk.collector}: {problem}")

    threads = [threading.Thread(target=open_one, args=(d,)) for d in desks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit("signing in failed: " + "; ".join(errors[:5]))
    return desks


# ---------------------------------------------------------------- the work

class Numbers:
    """Unique cash receipt numbers and UPI references for this run (never used by the seed: UPI 9…)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.counter = itertools.count(1)
        now = int(time.time())
        self.salt = now % 100_000
        self.receipt_prefix = "LT" + base36(now)

    def next(self) -> int:
        with self.lock:
            return next(self.counter)

    def upi(self) -> str:
        return f"9{self.salt:05d}{self.next() % 1_000_000:06d}"

    def receipt(self) -> str:
        return f"{self.receipt_prefix}-{self.next()}"


def base36(n: int) -> str:
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = digits[r] + out
    return out or "0"


MAX_AMOUNT_PAISE = 2_000_00


def amount(rng: random.Random) -> int:
    """₹100.00-₹1,999.99 in paise (sent as a decimal string built from integers: `rupees`)."""
    return rng.randrange(100_00, MAX_AMOUNT_PAISE)


def rupees(paise: int) -> str:
    return f"{paise // 100}.{paise % 100:02d}"


def today_ist() -> str:
    return datetime.now(IST).date().isoformat()


class Recorder:
    """Latencies (ms) and errors per route, from every client thread."""

    def __init__(self):
        self.lock = threading.Lock()
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.samples: list[str] = []
        self.requests = 0

    def record(self, route: str, started: float, ok: bool, detail: str = "") -> None:
        elapsed = (time.perf_counter() - started) * 1000
        with self.lock:
            self.requests += 1
            self.latencies[route].append(elapsed)
            if not ok:
                self.errors[route] += 1
                if len(self.samples) < 20:
                    self.samples.append(f"{route}: {detail}")


class Worker:
    """One client's loop: draw an action from MIX, perform it, record each request."""

    def __init__(self, base: str, desk: Desk, numbers: Numbers, seed: int):
        self.base, self.desk, self.numbers = base, desk, numbers
        self.rng = random.Random(seed * 7919 + desk.index)
        self.actions = list(MIX)
        self.weights = [MIX[a] for a in self.actions]

    def run(self, recorder: Recorder, stop: threading.Event, limit: "Counter | None" = None) -> None:
        while not stop.is_set():
            if limit is not None and not limit.take():
                return
            action = self.rng.choices(self.actions, self.weights)[0]
            try:
                getattr(self, "do_" + action.replace(" ", "_"))(recorder)
            except requests.RequestException as problem:  # recorded by the action; keep going
                recorder.record("connection", time.perf_counter(), False, repr(problem)[:200])

    def get(self, recorder: Recorder, route: str, session: requests.Session, path: str, *, headers=None,
            params=None, expect: int = 200) -> requests.Response | None:
        started = time.perf_counter()
        try:
            r = session.get(self.base + path, headers=headers, params=params, timeout=30, allow_redirects=False)
        except requests.RequestException as problem:
            recorder.record(route, started, False, repr(problem)[:200])
            return None
        recorder.record(route, started, r.status_code == expect, f"{r.status_code} {path} {r.text[:200]!r}")
        return r if r.status_code == expect else None

    def loan(self) -> str:
        return self.rng.choice(self.desk.loans)

    def loan_to_pay(self, paise: int) -> str | None:
        """A loan of the worklist that can still take this amount (the run pays loans down)."""
        for _ in range(20):
            number = self.rng.choice(self.desk.loans)
            if self.desk.payable.get(number, 0) >= paise:
                return number
        candidates = [n for n in self.desk.loans if self.desk.payable.get(n, 0) >= paise]
        return self.rng.choice(candidates) if candidates else None

    # ---- collector, browser
    def do_collector_worklist(self, rec):
        page = 1 if self.rng.random() < 0.8 else self.rng.randint(2, 5)
        self.get(rec, "GET /collector/", self.desk.collector_web, "/collector/", params={"page": page} if page > 1 else None)

    def do_loan_page(self, rec):
        self.get(rec, "GET /loans/<n>", self.desk.collector_web, f"/loans/{self.loan()}")

    def do_screen_payment(self, rec):
        paise = amount(self.rng)
        number = self.loan_to_pay(paise)
        if number is None:
            return self.do_loan_page(rec)
        form = self.get(rec, "GET /loans/<n>/payments/new", self.desk.collector_web, f"/loans/{number}/payments/new")
        if form is None:
            return
        csrf, key = CSRF_RE.search(form.text), KEY_RE.search(form.text)
        if not (csrf and key):
            rec.record("POST /loans/<n>/payments", time.perf_counter(), False, "no CSRF token or key on the form")
            return
        data = {"csrf_token": csrf.group(1), "idempotency_key": key.group(1), "amount": rupees(paise),
                "mode": "CASH", "reference": "", "cheque_bank": "", "receipt_number": self.numbers.receipt(),
                "value_date": today_ist()}
        started = time.perf_counter()
        r = self.desk.collector_web.post(self.base + f"/loans/{number}/payments", data=data, timeout=30,
                                         headers={"HX-Request": "true", "X-CSRFToken": csrf.group(1)},
                                         allow_redirects=False)
        rec.record("POST /loans/<n>/payments", started, r.status_code == 201, f"{r.status_code} {r.text[:300]!r}")
        if r.status_code == 201:
            self.desk.payable[number] -= paise

    # ---- collector, API
    def do_API_payment(self, rec):
        api = self.desk.collector_api
        paise = amount(self.rng)
        number = self.loan_to_pay(paise)
        if number is None:
            return self.do_API_loan_detail(rec)
        body = {"loan_number": number, "amount": rupees(paise), "mode": "UPI", "utr": self.numbers.upi(),
                "value_date": today_ist()}
        headers = {**api.headers(), "Idempotency-Key": uuid.uuid4().hex}
        started = time.perf_counter()
        r = api.session.post(self.base + "/api/v1/payments", json=body, headers=headers, timeout=30)
        rec.record("POST /api/v1/payments", started, r.status_code == 201, f"{r.status_code} {r.text[:300]!r}")
        if r.status_code == 201:
            self.desk.payable[number] -= paise
        if r.status_code == 201 and self.rng.random() < 0.1:  # a retry after a lost response: same key, same body
            started = time.perf_counter()
            again = api.session.post(self.base + "/api/v1/payments", json=body, headers=headers, timeout=30)
            ok = again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true" \
                and again.content == r.content
            rec.record("POST /api/v1/payments (replay)", started, ok,
                       f"{again.status_code} replayed={again.headers.get('Idempotent-Replayed')}")

    def do_API_loan_detail(self, rec):
        api = self.desk.collector_api
        self.get(rec, "GET /api/v1/loans/<n>", api.session, f"/api/v1/loans/{self.loan()}", headers=api.headers())

    # ---- manager
    def do_manager_approvals_inbox(self, rec):
        self.get(rec, "GET /approvals/", self.desk.manager_web, "/approvals/")

    def do_manager_home(self, rec):
        self.get(rec, "GET /manager/", self.desk.manager_web, "/manager/")

    def do_API_loan_list(self, rec):
        api = self.desk.manager_api
        params = {"page": self.rng.randint(1, 5), "per_page": 25}
        if self.rng.random() < 0.3:
            params["asset_class"] = self.rng.choice(["SMA-0", "SMA-1", "SMA-2", "NPA"])
        self.get(rec, "GET /api/v1/loans", api.session, "/api/v1/loans", headers=api.headers(), params=params)

    # ---- finance
    def do_finance_dashboard(self, rec):
        self.get(rec, "GET /finance/", self.desk.finance_web, "/finance/")

    def do_reconciliation_dashboard(self, rec):
        self.get(rec, "GET /reconciliation/", self.desk.finance_web, "/reconciliation/")

    # ---- the floor
    def do_healthz(self, rec):
        self.get(rec, "GET /healthz", self.desk.collector_web, "/healthz")


class Counter:
    """A shared budget of actions (memory.py stops at an exact request count)."""

    def __init__(self, n: int):
        self.n, self.lock = n, threading.Lock()

    def take(self) -> bool:
        with self.lock:
            if self.n <= 0:
                return False
            self.n -= 1
            return True


def drive(base: str, desks: list[Desk], numbers: Numbers, *, seconds: float | None = None,
          actions: int | None = None, seed: int = 1) -> tuple[Recorder, float]:
    """Run the desks concurrently for `seconds` (or until `actions` actions are done). Returns the figures
    and the wall-clock seconds."""
    recorder, stop = Recorder(), threading.Event()
    limit = Counter(actions) if actions is not None else None
    workers = [Worker(base, desk, numbers, seed) for desk in desks]
    threads = [threading.Thread(target=w.run, args=(recorder, stop, limit), daemon=True) for w in workers]
    started = time.perf_counter()
    for t in threads:
        t.start()
    if seconds is not None:
        stop.wait(seconds)
        stop.set()
    for t in threads:
        t.join()
    return recorder, time.perf_counter() - started


# ---------------------------------------------------------------- where the CPU went

def cpu_seconds(server: "Server") -> dict[str, float]:
    """CPU seconds used so far by the harness, the gunicorn processes, PostgreSQL's processes (all of them:
    other work on the server counts too) and the whole machine (busy, all cores)."""
    def used(process: psutil.Process, children: bool = False) -> float:
        try:
            t = process.cpu_times()
            return t.user + t.system + ((t.children_user + t.children_system) if children else 0.0)
        except psutil.Error:
            return 0.0

    master = psutil.Process(server.process.pid) if server.process else None
    postgres = [p for p in psutil.process_iter(["name"]) if (p.info["name"] or "").startswith("postgres")]
    machine = psutil.cpu_times()
    gunicorn = (used(master, children=True) + sum(used(p) for p in server.workers())) if master else 0.0
    return {"harness": used(psutil.Process()), "gunicorn": gunicorn,
            "postgresql": sum(used(p, children=True) for p in postgres),  # parallel workers are reaped children
            "machine": machine.user + machine.system + getattr(machine, "nice", 0) + getattr(machine, "irq", 0)
            + getattr(machine, "softirq", 0) + getattr(machine, "steal", 0)}


def cpu_share(before: dict, after: dict, wall: float) -> dict[str, float]:
    """Cores used on average during `wall` seconds, per consumer (2.0 = both cores of this machine)."""
    return {k: round((after[k] - before[k]) / wall, 2) for k in before}


# ---------------------------------------------------------------- statistics

def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(p / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def summary(values: list[float]) -> dict:
    s = sorted(values)
    return {"count": len(s), "p50": round(percentile(s, 50), 1), "p95": round(percentile(s, 95), 1),
            "p99": round(percentile(s, 99), 1), "max": round(s[-1], 1) if s else None,
            "mean": round(sum(s) / len(s), 1) if s else None}
