"""Structured logs: one JSON object per line, redacted, to rotated files or to stdout.

Every line carries `time` (ISO 8601, UTC), `level`, `logger`, `message` and `request_id` ('-' outside a
request); request lines add `user`, `method`, `route`, `status` and `latency_ms`.

Two outputs (LOG_OUTPUT):
* ``files`` (production default): ``app.log`` (everything but job lines), ``error.log`` (ERROR and above,
  jobs included) and the job log (JOB_LOG_FILE, see jobs/runtime.py) under LOG_DIR. Each rotates at
  midnight IST or when it passes LOG_MAX_BYTES, whichever comes first; rotated files older than
  LOG_RETENTION_DAYS, or beyond the newest LOG_KEEP_FILES, are deleted.
* ``stdout`` (development and test default): the same JSON lines on stdout, for systemd/journald or any
  process manager, which then owns rotation.

Redaction happens on the final line, whatever produced it: secrets in ``key=value`` / JSON form
(password, token, secret, authorization, api key…), bearer tokens, JWTs, passwords inside URLs, and
Indian mobile numbers (kept as ``98******10``). Nothing logged can carry them out.
"""
from __future__ import annotations

import fcntl
import logging
import os
import re
import sys
import time
from datetime import datetime, timedelta, timezone
from logging.handlers import BaseRotatingHandler
from pathlib import Path

from flask import g, has_request_context
from pythonjsonlogger.json import JsonFormatter

from webapp.clock import IST

# The request-id filter and a text format for anything that still wants one (kept for compatibility).
FORMAT = "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"
JOB_LOGGER = "kisht.jobs"

_SECRET_WORDS = r"(?:password|passwd|pwd|secret|token|api[_-]?key|authorization|session|otp)"
_SECRET_WORD = re.compile(_SECRET_WORDS)  # searched in the lowered line: ten times faster than re.I
_BEARER = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.I)
_SECRET_VALUES: list[tuple[re.Pattern, str]] = [
    # JSON-ish: "password": "…"  (also inside an escaped JSON string in a message)
    (re.compile(r'(\\?"[\w-]*' + _SECRET_WORDS + r'[\w-]*\\?"\s*:\s*\\?")((?:[^"\\]|\\[^"])*)(\\?")', re.I),
     r"\1[REDACTED]\3"),
    # Python reprs: 'password': '…'
    (re.compile(r"('[\w-]*" + _SECRET_WORDS + r"[\w-]*'\s*:\s*')([^']*)(')", re.I), r"\1[REDACTED]\3"),
    # key=value / key: value
    (re.compile(r"(\b[\w-]*" + _SECRET_WORDS + r"[\w-]*\b\s*[=:]\s*)(?!\[REDACTED\])([^\s&,;\"'}]+)", re.I),
     r"\1[REDACTED]"),
]
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s\"]+:)[^@\s\"]+(@)", re.I)
# Indian mobile numbers: 10 digits starting 6-9 (or 5 + 5 with a space or dash), optionally after +91 / 91 / 0.
_PHONE = re.compile(r"(?<![0-9A-Za-z])(?:\+?91[\s-]?|0)?([6-9]\d)(\d{3}[\s-]?\d{3})(\d{2})(?![0-9A-Za-z])")


def redact(text: str) -> str:
    """The line with secrets and phone numbers removed (see the module docstring).

    Each pattern runs only when the line holds what it needs (a secret word, "bearer", "eyJ", "://"): the
    patterns cost about 80 µs a line, the tests 3, and most lines (every request line) need none.
    """
    lowered = text.lower()
    if "bearer" in lowered or "basic" in lowered:
        text = _BEARER.sub(r"\1 [REDACTED]", text)
    if _SECRET_WORD.search(lowered):
        for pattern, replacement in _SECRET_VALUES:
            text = pattern.sub(replacement, text)
    if "eyJ" in text:
        text = _JWT.sub("[REDACTED-JWT]", text)
    if "://" in text:
        text = _URL_PASSWORD.sub(r"\1[REDACTED]\2", text)
    return _PHONE.sub(lambda m: f"{m.group(1)}******{m.group(3)}", text)


class RequestIdFilter(logging.Filter):
    """Adds request_id (and the signed-in user, when known) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = g.get("request_id", "-") if has_request_context() else "-"
        if not hasattr(record, "user") and has_request_context():
            user = g.get("log_user")
            if user:
                record.user = user
        return True


class KishtJsonFormatter(JsonFormatter):
    """time, level, logger, message, request_id, then any extra fields; the whole line redacted."""

    def __init__(self):
        super().__init__("%(message)s", rename_fields={"levelname": "level", "name": "logger"},
                         json_ensure_ascii=False)

    def add_fields(self, log_record, record, message_dict):
        log_record["time"] = datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")
        log_record["level"] = record.levelname
        log_record["logger"] = record.name
        super().add_fields(log_record, record, message_dict)
        log_record.pop("levelname", None)
        log_record.pop("name", None)
        log_record.setdefault("request_id", getattr(record, "request_id", "-"))

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class SizeAndTimeRotatingFileHandler(BaseRotatingHandler):
    """Rotates at midnight IST or past max_bytes; deletes rotated files past retention_days or keep_files.

    Safe for several processes writing one file (gunicorn workers): rollover takes an flock on
    ``<file>.lock`` and renames only if the file is still the one this process writes; every process
    reopens when the path's inode changes under it (another process rotated).
    """

    def __init__(self, filename: str | Path, max_bytes: int, retention_days: int, keep_files: int):
        self.max_bytes, self.retention_days, self.keep_files = max_bytes, retention_days, keep_files
        Path(filename).parent.mkdir(parents=True, exist_ok=True)
        super().__init__(str(filename), "a", encoding="utf-8", delay=False)
        self._inode = self._stat_inode()
        self._next_rollover = self._midnight_after(time.time())

    @staticmethod
    def _midnight_after(moment: float) -> float:
        day = datetime.fromtimestamp(moment, IST).date() + timedelta(days=1)
        return datetime.combine(day, datetime.min.time(), tzinfo=IST).timestamp()

    def _stat_inode(self) -> int | None:
        try:
            return os.stat(self.baseFilename).st_ino
        except FileNotFoundError:
            return None

    def _reopen_if_moved(self) -> None:
        inode = self._stat_inode()
        if inode != self._inode:
            if self.stream:
                self.stream.close()
            self.stream = self._open()
            self._inode = self._stat_inode()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._reopen_if_moved()
        except OSError:
            pass
        super().emit(record)

    def shouldRollover(self, record: logging.LogRecord) -> bool:
        if time.time() >= self._next_rollover:
            return True
        if self.max_bytes > 0 and self.stream is not None:
            self.stream.seek(0, 2)
            return self.stream.tell() >= self.max_bytes
        return False

    def doRollover(self) -> None:
        lock_path = self.baseFilename + ".lock"
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if self._stat_inode() == self._inode and os.path.exists(self.baseFilename) \
                        and os.path.getsize(self.baseFilename) > 0:
                    stamp = datetime.now(IST).strftime("%Y%m%d-%H%M%S-%f")
                    if self.stream:
                        self.stream.close()
                        self.stream = None
                    os.replace(self.baseFilename, f"{self.baseFilename}.{stamp}")
                self._delete_old()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        if self.stream:
            self.stream.close()
        self.stream = self._open()
        self._inode = self._stat_inode()
        self._next_rollover = self._midnight_after(time.time())

    def rotated_files(self) -> list[Path]:
        base = Path(self.baseFilename)
        return sorted((p for p in base.parent.glob(base.name + ".*") if not p.name.endswith(".lock")),
                      key=lambda p: p.name)

    def _delete_old(self) -> None:
        rotated = self.rotated_files()
        cutoff = time.time() - self.retention_days * 86400
        doomed = set(rotated[:-self.keep_files] if self.keep_files else rotated)
        doomed.update(p for p in rotated if p.stat().st_mtime < cutoff)
        for path in doomed:
            path.unlink(missing_ok=True)


def file_handler(path: str | Path, config) -> SizeAndTimeRotatingFileHandler:
    return SizeAndTimeRotatingFileHandler(path, config["LOG_MAX_BYTES"], config["LOG_RETENTION_DAYS"],
                                          config["LOG_KEEP_FILES"])


class _StdoutHandler(logging.StreamHandler):
    """Writes to sys.stdout as it is at each line (test runners and click swap it)."""

    def __init__(self):
        super().__init__(sys.stdout)

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, _value):
        pass


class _NotJobs(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith(JOB_LOGGER)


def _signature(config) -> tuple:
    return (config["LOG_OUTPUT"], config["LOG_DIR"], config["LOG_LEVEL"], config["LOG_MAX_BYTES"],
            config["LOG_RETENTION_DAYS"], config["LOG_KEEP_FILES"])


def configure(config) -> None:
    """Install the root handlers for this process (once per distinct configuration)."""
    root = logging.getLogger()
    signature = _signature(config)
    current = [h for h in root.handlers if getattr(h, "kisht", None)]
    if current and all(h.kisht == signature for h in current):
        return
    for handler in current:
        root.removeHandler(handler)
        handler.close()
    formatter = KishtJsonFormatter()
    if config["LOG_OUTPUT"] == "files":
        directory = Path(config["LOG_DIR"])
        app_log = file_handler(directory / "app.log", config)
        app_log.addFilter(_NotJobs())
        error_log = file_handler(directory / "error.log", config)
        error_log.setLevel(logging.ERROR)
        handlers: list[logging.Handler] = [app_log, error_log]
    else:
        handlers = [_StdoutHandler()]
    for handler in handlers:
        handler.kisht = signature
        handler.setFormatter(formatter)
        handler.addFilter(RequestIdFilter())
        root.addHandler(handler)
    root.setLevel(config["LOG_LEVEL"])
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # our own request line replaces its access log


def error_file_handler(config) -> logging.Handler | None:
    """The root's error.log handler (jobs/runtime.py adds it to the job logger, which does not propagate)."""
    for handler in logging.getLogger().handlers:
        if getattr(handler, "kisht", None) and isinstance(handler, SizeAndTimeRotatingFileHandler) \
                and handler.level == logging.ERROR:
            return handler
    return None
