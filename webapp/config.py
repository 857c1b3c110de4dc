"""Settings from the environment (.env via python-dotenv), one class per APP_ENV."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from dotenv import load_dotenv

ROOT = Path(__file__).resolve().parent.parent
INSTANCE_DIR = ROOT / "instance"

# Secrets shorter than this, or made of one repeated character, are refused in production.
MIN_SECRET_LENGTH = 32
KNOWN_WEAK_SECRETS = {"dev", "secret", "changeme", "change-me", "development", "test", "kisht"}


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _int(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    if not raw.strip().isdigit() or int(raw) < minimum:
        refuse(f"{name} must be a whole number of at least {minimum}, not {raw!r}")
    return int(raw)


def _sla_days(raw: str) -> tuple[int, ...]:
    """DISPUTE_SLA_DAYS: whole numbers of days, strictly increasing, e.g. "7,15,30"."""
    parts = [part.strip() for part in raw.split(",")]
    if not all(part.isdigit() and int(part) >= 1 for part in parts) or \
            any(int(a) >= int(b) for a, b in zip(parts, parts[1:])):
        refuse(f"DISPUTE_SLA_DAYS must be increasing whole numbers of days like 7,15,30, not {raw!r}")
    return tuple(int(part) for part in parts)


def _day_list(name: str, default: str) -> tuple[int, ...]:
    """A comma-separated list of whole numbers of days, each at least 1 ("" for none), sorted, unique."""
    raw = os.environ.get(name)
    raw = default if raw is None else raw
    parts = [part.strip() for part in raw.split(",") if part.strip()]
    if not all(part.isdigit() and int(part) >= 1 for part in parts):
        refuse(f"{name} must be a comma-separated list of whole numbers of days (each at least 1), not {raw!r}")
    return tuple(sorted({int(part) for part in parts}))


def refuse(reason: str) -> None:
    """Stop start-up with one clear line. Exit status 3 also makes gunicorn's master halt, not respawn."""
    print(f"Kisht refuses to start: {reason}", file=sys.stderr)
    raise SystemExit(3)


class BaseConfig:
    APP_ENV = "development"
    TESTING = False
    DEFAULT_LOG_OUTPUT = "stdout"

    def __init__(self) -> None:
        env = os.environ
        self.SECRET_KEY = env.get("SECRET_KEY", "")
        self.DEBUG = _bool(env.get("DEBUG"))
        self.DATABASE_URL = env.get("DATABASE_URL") or f"sqlite:///{INSTANCE_DIR / 'kisht.db'}"
        # Empty REDIS_URL means the embedded mode: jobs in-process, limits in memory (never production).
        self.REDIS_URL = env.get("REDIS_URL", "")
        # PostgreSQL connections per process: keep (workers × threads) within the server's max_connections.
        self.DB_POOL_SIZE = _int("DB_POOL_SIZE", 10)
        self.DB_MAX_OVERFLOW = _int("DB_MAX_OVERFLOW", 20)
        self.LOG_LEVEL = env.get("LOG_LEVEL", "INFO").strip().upper()
        if self.LOG_LEVEL not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            refuse(f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, not {self.LOG_LEVEL!r}")
        # Operations (docs/deployment.md "Logs", "Metrics", "Backups"): JSON logs to rotated files or stdout.
        self.LOG_OUTPUT = (env.get("LOG_OUTPUT") or self.DEFAULT_LOG_OUTPUT).strip().lower()
        if self.LOG_OUTPUT not in ("files", "stdout"):
            refuse(f"LOG_OUTPUT must be files or stdout, not {self.LOG_OUTPUT!r}")
        self.LOG_DIR = env.get("LOG_DIR") or str(INSTANCE_DIR / "logs")
        self.LOG_MAX_BYTES = _int("LOG_MAX_BYTES", 50 * 1024 * 1024)
        self.LOG_RETENTION_DAYS = _int("LOG_RETENTION_DAYS", 30)
        self.LOG_KEEP_FILES = _int("LOG_KEEP_FILES", 60)
        # /metrics answers a bearer METRICS_TOKEN, or any client in METRICS_ALLOW (addresses/networks).
        self.METRICS_TOKEN = env.get("METRICS_TOKEN", "")
        self.METRICS_ALLOW = env.get("METRICS_ALLOW", "127.0.0.1/32,::1/128")
        self.BACKUP_DIR = env.get("BACKUP_DIR") or str(INSTANCE_DIR / "backups")
        self.BACKUP_KEEP_DAILY = _int("BACKUP_KEEP_DAILY", 7, minimum=0)
        self.BACKUP_KEEP_WEEKLY = _int("BACKUP_KEEP_WEEKLY", 4, minimum=0)
        self.BACKUP_KEEP_MONTHLY = _int("BACKUP_KEEP_MONTHLY", 12, minimum=0)
        self.PG_BIN_DIR = env.get("PG_BIN_DIR", "")  # where pg_dump/pg_restore live when not on PATH
        # Reverse proxies in front of the app whose X-Forwarded-For/-Proto to trust (0: none).
        self.PROXY_HOPS = _int("PROXY_HOPS", 0, minimum=0)
        # Login and session policy.
        self.SESSION_IDLE_MINUTES = _int("SESSION_IDLE_MINUTES", 30)
        self.LOGIN_MAX_ATTEMPTS = _int("LOGIN_MAX_ATTEMPTS", 5)
        self.LOGIN_LOCKOUT_MINUTES = _int("LOGIN_LOCKOUT_MINUTES", 15)
        # Ledger configuration (DESIGN.md §3, §4).
        self.ALLOCATION_ORDER = tuple(
            part.strip() for part in env.get("ALLOCATION_ORDER", "charges,interest,principal").split(",")
        )
        self.BUCKETS = env.get("BUCKETS", "0,1-30,31-60,61-90,91-180,181+")
        # A payment whose value date is more than this many days before today (IST) waits for a manager.
        self.BACKDATE_APPROVAL_DAYS = _int("BACKDATE_APPROVAL_DAYS", 7)
        self.PAGE_SIZE = _int("PAGE_SIZE", 25)
        # Day-end: loans per batch (one transaction each), batches run at once on PostgreSQL (one connection
        # each; SQLite runs one at a time), days of missed runs caught up, lock lifetime. Four at a time on a
        # 2-core server: as fast as two when the machine is idle, and when the desks are busy day-end's four
        # connections keep enough of the CPU to finish in time (docs/performance.md).
        self.DAYEND_BATCH_SIZE = _int("DAYEND_BATCH_SIZE", 100_000)
        self.DAYEND_PARALLEL_BATCHES = _int("DAYEND_PARALLEL_BATCHES", 4)
        self.DAYEND_CATCHUP_DAYS = _int("DAYEND_CATCHUP_DAYS", 31)
        self.JOB_LOCK_TTL_SECONDS = _int("JOB_LOCK_TTL_SECONDS", 120)
        # Collections (contact rules from RBI's recovery conduct: calls and visits 08:00–19:00 IST only).
        self.CONTACT_MAX_CALLS_PER_DAY = _int("CONTACT_MAX_CALLS_PER_DAY", 3)
        self.CONTACT_BACKDATE_DAYS = _int("CONTACT_BACKDATE_DAYS", 3, minimum=0)
        self.PROMISE_MAX_DAYS = _int("PROMISE_MAX_DAYS", 30)
        # Priority score = Σ weight × factor (see docs/architecture.md "Priority scoring").
        self.SCORE_WEIGHTS = {
            "dpd": _int("SCORE_WEIGHT_DPD", 2, minimum=0),  # per day past due (capped at 365)
            "overdue": _int("SCORE_WEIGHT_OVERDUE", 1, minimum=0),  # per ₹1,000 overdue (capped at 1,000)
            "silence": _int("SCORE_WEIGHT_SILENCE", 1, minimum=0),  # per day since the last payment (cap 365)
            "broken_promise": _int("SCORE_WEIGHT_BROKEN_PROMISE", 30, minimum=0),  # each in the last 90 days
            "roll": _int("SCORE_WEIGHT_ROLL", 50, minimum=0),  # per class worse than 30 days ago
        }
        # Escalation rules: CLASS or DPD>=N → queue level, checked from the last to the first.
        self.ESCALATION_RULES = env.get("ESCALATION_RULES", "SMA-1:MANAGER_REVIEW,SMA-2:SENIOR_REVIEW,NPA:LEGAL")
        # Job log lines (logger "kisht.jobs") also go to this file, rotated, besides stdout.
        self.JOB_LOG_FILE = env.get("JOB_LOG_FILE") or str(Path(self.LOG_DIR) / "jobs.log")
        # Disputes: evidence files (PDF, JPEG, PNG) live outside static/ and are served only by a route that
        # checks the loan's scope; each is at most EVIDENCE_MAX_BYTES, a dispute holds EVIDENCE_MAX_FILES.
        self.EVIDENCE_DIR = env.get("EVIDENCE_DIR") or str(INSTANCE_DIR / "evidence")
        self.EVIDENCE_MAX_BYTES = _int("EVIDENCE_MAX_BYTES", 5 * 1024 * 1024)
        self.EVIDENCE_MAX_FILES = _int("EVIDENCE_MAX_FILES", 5)
        # Age bands of open disputes, in days; past the last one a dispute is overdue.
        self.DISPUTE_SLA_DAYS = _sla_days(env.get("DISPUTE_SLA_DAYS") or "7,15,30")
        # Largest request body: a dispute with its full allowance of evidence (5 × 5 MB) plus the form.
        self.MAX_CONTENT_LENGTH = _int("MAX_UPLOAD_BYTES", 26 * 1024 * 1024)
        # Payment reminders (docs/architecture.md "Reminders"): which days, how they travel, what they say.
        self.REMINDER_DAYS_BEFORE = _day_list("REMINDER_DAYS_BEFORE", "3")
        self.REMINDER_ON_DUE_DAY = _bool(env.get("REMINDER_ON_DUE_DAY"), True)
        self.REMINDER_OVERDUE_DAYS = _day_list("REMINDER_OVERDUE_DAYS", "1,7,15,30")
        self.REMINDER_TRANSPORT = (env.get("REMINDER_TRANSPORT") or "log").strip().lower()
        self.REMINDER_LENDER_NAME = env.get("REMINDER_LENDER_NAME") or "Kisht Finance"
        self.REMINDER_PAYMENT_CHANNELS = env.get("REMINDER_PAYMENT_CHANNELS") or (
            "UPI ID kisht.collections@upi; any Kisht branch; https://pay.kisht.example")
        self.REMINDER_MAX_ATTEMPTS = _int("REMINDER_MAX_ATTEMPTS", 5)
        self.REMINDER_RETRY_SECONDS = _int("REMINDER_RETRY_SECONDS", 300)  # doubled after each failed attempt
        self.REMINDER_BATCH_SIZE = _int("REMINDER_BATCH_SIZE", 100)  # deliveries between kill-switch checks
        self.REMINDER_CATCHUP_DAYS = _int("REMINDER_CATCHUP_DAYS", 7, minimum=0)  # how far back --date may go
        self.SMTP_HOST = env.get("SMTP_HOST", "")
        self.SMTP_PORT = _int("SMTP_PORT", 587)
        self.SMTP_USER = env.get("SMTP_USER", "")
        self.SMTP_PASSWORD = env.get("SMTP_PASSWORD", "")
        self.SMTP_FROM = env.get("SMTP_FROM", "")
        self.SMTP_STARTTLS = _bool(env.get("SMTP_STARTTLS"), True)
        self.SMTP_TIMEOUT_SECONDS = _int("SMTP_TIMEOUT_SECONDS", 20)
        self.REMINDER_WEBHOOK_URL = env.get("REMINDER_WEBHOOK_URL", "")
        self.REMINDER_WEBHOOK_SECRET = env.get("REMINDER_WEBHOOK_SECRET", "")
        self.REMINDER_WEBHOOK_CHANNEL = (env.get("REMINDER_WEBHOOK_CHANNEL") or "SMS").strip().upper()
        self.REMINDER_WEBHOOK_TIMEOUT_SECONDS = _int("REMINDER_WEBHOOK_TIMEOUT_SECONDS", 10)
        problem = reminder_setting_problem(self)
        if problem:
            refuse(problem)
        # Finance reconciliation (docs/architecture.md "Finance reconciliation"): bank layouts are data, in
        # webapp/bank_layouts.py; suggestions look this many days either side of a payment's value date;
        # unmatched items are aged in these bands (days); a statement holds at most this many lines.
        from webapp.bank_layouts import BANK_LAYOUTS, layouts_problem

        self.BANK_LAYOUTS = BANK_LAYOUTS
        problem = layouts_problem(self.BANK_LAYOUTS)
        if problem:
            refuse(problem)
        self.RECON_WINDOW_DAYS = _int("RECON_WINDOW_DAYS", 3, minimum=0)
        self.RECON_AGEING_DAYS = _day_list("RECON_AGEING_DAYS", "3,7,15,30") or (3, 7, 15, 30)
        self.STATEMENT_MAX_LINES = _int("STATEMENT_MAX_LINES", 20_000)
        # Shadow month (docs/architecture.md "Shadow month and go-live"): tracker layouts are data in
        # webapp/tracker_layouts.py (checked with the buckets); the go/no-go board wants this many
        # consecutive converged business dates.
        from webapp.tracker_layouts import TRACKER_LAYOUTS

        self.TRACKER_LAYOUTS = TRACKER_LAYOUTS
        self.SHADOW_CONVERGED_DAYS = _int("SHADOW_CONVERGED_DAYS", 7, minimum=1)
        # JSON API v1 (docs/api.md "Authentication", "Rate limits"): token lifetimes, the JWT signing key (default
        # SECRET_KEY), and flask-limiter limits in its notation ("N per minute", several separated by ";").
        self.API_ACCESS_TOKEN_MINUTES = _int("API_ACCESS_TOKEN_MINUTES", 15)
        self.API_REFRESH_TOKEN_DAYS = _int("API_REFRESH_TOKEN_DAYS", 7)
        self.JWT_SECRET_KEY = env.get("JWT_SECRET_KEY", "")
        self.API_RATE_LIMITS_ENABLED = _bool(env.get("API_RATE_LIMITS_ENABLED"), self.APP_ENV != "test")
        self.API_RATE_LIMIT_STORAGE_URL = env.get("API_RATE_LIMIT_STORAGE_URL", "")  # default: REDIS_URL
        self.API_LIMIT_LOGIN = env.get("API_LIMIT_LOGIN") or "5 per minute"  # per username
        self.API_LIMIT_LOGIN_IP = env.get("API_LIMIT_LOGIN_IP") or "5 per minute"  # per client address
        self.API_LIMIT_REFRESH = env.get("API_LIMIT_REFRESH") or "10 per minute"  # per token family
        self.API_LIMIT_DEFAULT = env.get("API_LIMIT_DEFAULT") or "300 per minute;5000 per hour"  # per token family
        # Seconds the aggregates of webapp/cache.py may be reused (class totals, a large list's count and order,
        # the reconciliation dashboard's past days); 0 computes them on every request (the tests' default).
        self.AGGREGATE_CACHE_SECONDS = _int("AGGREGATE_CACHE_SECONDS", 0 if self.APP_ENV == "test" else 60, minimum=0)
        self.ARGON2_TIME_COST = _int("ARGON2_TIME_COST", 3)
        self.ARGON2_MEMORY_KIB = _int("ARGON2_MEMORY_KIB", 65536)
        self.SESSION_COOKIE_HTTPONLY = True
        self.SESSION_COOKIE_SAMESITE = "Lax"
        self.SESSION_COOKIE_SECURE = False
        self.SESSION_COOKIE_NAME = "kisht_session"
        self.WTF_CSRF_TIME_LIMIT = None  # the token lives as long as the session
        self.WTF_CSRF_HEADERS = ["X-CSRFToken"]


class DevelopmentConfig(BaseConfig):
    APP_ENV = "development"

    def __init__(self) -> None:
        super().__init__()
        if not self.SECRET_KEY:
            # A per-checkout random key so a bare machine runs without a .env; never used in production.
            key_file = INSTANCE_DIR / "dev-secret-key"
            INSTANCE_DIR.mkdir(exist_ok=True)
            if not key_file.exists():
                key_file.write_text(os.urandom(32).hex())
            self.SECRET_KEY = key_file.read_text().strip()


class TestConfig(BaseConfig):
    APP_ENV = "test"
    TESTING = True

    def __init__(self) -> None:
        super().__init__()
        self.SECRET_KEY = self.SECRET_KEY or os.urandom(32).hex()
        self.WTF_CSRF_ENABLED = True
        # Cheap password hashing keeps the suite fast; the algorithm is the same as in production.
        self.ARGON2_TIME_COST, self.ARGON2_MEMORY_KIB = 1, 1024


class ProductionConfig(BaseConfig):
    APP_ENV = "production"
    DEFAULT_LOG_OUTPUT = "files"

    def __init__(self) -> None:
        super().__init__()
        self.SESSION_COOKIE_SECURE = True


CONFIGS = {"development": DevelopmentConfig, "test": TestConfig, "production": ProductionConfig}


def load_config(overrides: dict | None = None):
    """Read .env (without overriding the real environment) and build the config for APP_ENV."""
    load_dotenv(ROOT / ".env", override=False)
    app_env = (overrides or {}).get("APP_ENV") or os.environ.get("APP_ENV", "development")
    if app_env not in CONFIGS:
        refuse(f"APP_ENV must be one of {', '.join(CONFIGS)}, not {app_env!r}")
    config = CONFIGS[app_env]()
    for key, value in (overrides or {}).items():
        setattr(config, key, value)
    return config


def secret_key_problem(secret: str) -> str | None:
    """Why a SECRET_KEY is unfit for production, or None when it is fit."""
    if not secret:
        return "SECRET_KEY is missing"
    if len(secret) < MIN_SECRET_LENGTH:
        return f"SECRET_KEY is weak (shorter than {MIN_SECRET_LENGTH} characters)"
    if secret.lower() in KNOWN_WEAK_SECRETS or len(set(secret)) < 8:
        return "SECRET_KEY is weak (too few distinct characters)"
    return None


def ledger_setting_problem(config) -> str | None:
    """Why the allocation order or bucket ranges are unusable, or None."""
    from webapp.services.ledger import COMPONENTS, parse_buckets

    if sorted(config.ALLOCATION_ORDER) != sorted(COMPONENTS):
        return f"ALLOCATION_ORDER must list each of {', '.join(COMPONENTS)} once"
    try:
        parse_buckets(config.BUCKETS)
    except ValueError as problem:
        return f"BUCKETS: {problem}"
    from webapp.tracker_layouts import layout_problem

    for key, layout in config.TRACKER_LAYOUTS.items():
        problem = layout_problem(key, layout, [label for label, _, _ in parse_buckets(config.BUCKETS)])
        if problem:
            return problem
    from webapp.services.collections import parse_rules

    try:
        parse_rules(config.ESCALATION_RULES)
    except ValueError as problem:
        return f"ESCALATION_RULES: {problem}"
    return None


def reminder_setting_problem(config) -> str | None:
    """Why the reminder transport settings are unusable, or None."""
    transport = config.REMINDER_TRANSPORT
    if transport not in ("log", "smtp", "webhook"):
        return f"REMINDER_TRANSPORT must be log, smtp or webhook, not {transport!r}"
    if transport == "smtp" and not (config.SMTP_HOST and config.SMTP_FROM):
        return "REMINDER_TRANSPORT=smtp needs SMTP_HOST and SMTP_FROM"
    if transport == "webhook":
        if not config.REMINDER_WEBHOOK_URL.startswith(("https://", "http://")):
            return "REMINDER_TRANSPORT=webhook needs REMINDER_WEBHOOK_URL (http:// or https://)"
        if len(config.REMINDER_WEBHOOK_SECRET) < 16:
            return "REMINDER_TRANSPORT=webhook needs REMINDER_WEBHOOK_SECRET (at least 16 characters)"
    if config.REMINDER_WEBHOOK_CHANNEL not in ("SMS", "WHATSAPP"):
        return f"REMINDER_WEBHOOK_CHANNEL must be SMS or WHATSAPP, not {config.REMINDER_WEBHOOK_CHANNEL!r}"
    return None
