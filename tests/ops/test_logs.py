"""Structured logs: JSON lines with the request's fields, files per kind, rotation, and no secrets or phones."""
import json
import logging
import os
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import PASSWORD, login
from webapp import create_app, logs

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@pytest.fixture()
def keep_root_logging():
    """The tests below install their own root handlers; give the others theirs back."""
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in saved:
            handler.close()
    root.handlers[:], root.level = saved, level


def lines_of(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_redact_removes_secrets_tokens_and_phone_numbers():
    cases = {
        "password=hunter2-secret": "hunter2-secret",
        '{"password": "s3cr3t-pass", "x": 1}': "s3cr3t-pass",
        "Authorization: Bearer abc.def.ghi": "abc.def.ghi",
        "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl seen": "eyJhbGciOiJIUzI1NiJ9",
        "db postgresql://kisht:Pa55word@db:5432/kisht": "Pa55word",
        "calling 9876543210 now": "9876543210",
        "calling +91 98765 43210": "98765 43210",
        "calling +91-9876543210": "9876543210",
        "api_key: AKIA1234567890": "AKIA1234567890",
    }
    for raw, secret in cases.items():
        cleaned = logs.redact(raw)
        if secret:
            assert secret not in cleaned, (raw, cleaned)
    assert logs.redact("calling 9876543210") == "calling 98******10"
    # What is not a secret stays readable: loan numbers, amounts, request ids, timestamps.
    for text in ("loan KL0001 paid 8791.59", "request 0a1b2c3d4e5f6a7b8c9d", "took 1712345678 ms"):
        assert logs.redact(text) == text


def test_request_lines_carry_time_level_request_id_user_route_status_latency(app, login_as, capsys):
    client = login_as("adm")
    capsys.readouterr()
    response = client.get("/admin/", headers={"X-Request-ID": "ops-test-request-1"})
    assert response.status_code == 200
    (line,) = [entry for entry in lines_of(capsys.readouterr().out) if entry.get("logger") == "kisht.request"]
    assert line["request_id"] == "ops-test-request-1" and line["user"] == "adm"
    assert line["route"] == "/admin/" and line["method"] == "GET" and line["status"] == 200
    assert line["level"] == "INFO" and line["time"].endswith("+00:00") and line["latency_ms"] >= 0


def test_no_password_secret_or_full_phone_in_any_line(app, db, users, make_loan, capsys):
    """Sign-ins (right and wrong), a loan with a phone number, a reminder sent through the log transport."""
    from webapp.services import reminders  # noqa: F401  (the log transport writes the borrower's number)

    make_loan(loan_number="KLLOG1", borrower_phone="9822012345")
    client = app.test_client()
    login(client, "col", "wrong-password-123")
    login(client, "col", PASSWORD)
    client.get("/loans/KLLOG1")
    logging.getLogger("kisht.jobs").info("reminder to %s: pay via UPI", "+91 98220 12345")
    logging.getLogger("kisht.test").warning("login payload %s", {"username": "col", "password": PASSWORD})
    logging.getLogger("kisht.test").error("config dump SECRET_KEY=%s", app.config["SECRET_KEY"])
    out = capsys.readouterr()
    text = out.out + out.err
    assert "KLLOG1" in text or "/loans/" in text  # lines were written
    for forbidden in (PASSWORD, "wrong-password-123", app.config["SECRET_KEY"], "9822012345", "98220 12345"):
        assert forbidden not in text, forbidden
    assert "98******45" in text


def test_files_mode_writes_app_error_and_job_logs(tmp_path, keep_root_logging):
    from jobs import runtime

    app = create_app({"APP_ENV": "test", "DATABASE_URL": f"sqlite:///{tmp_path / 'k.db'}", "REDIS_URL": "",
                      "LOG_OUTPUT": "files", "LOG_DIR": str(tmp_path / "logs"),
                      "JOB_LOG_FILE": str(tmp_path / "logs" / "jobs.log")})
    logs.configure(app.config)  # create_app read LOG_OUTPUT before the overrides were applied
    saved_job_handlers = list(runtime.log.handlers)
    try:
        runtime.configure_logging(app)
        app.test_client().get("/healthz")
        logging.getLogger("kisht.test").error("something broke for user %s", "adm")
        runtime.log.info("day-end 2026-01-01 started")
        runtime.log.error("day-end 2026-01-01 failed")
    finally:
        for handler in runtime.log.handlers:
            if handler not in saved_job_handlers and not getattr(handler, "kisht", None):
                handler.close()
        runtime.log.handlers[:] = saved_job_handlers
    for handler in logging.getLogger().handlers:
        handler.flush()
    folder = tmp_path / "logs"
    app_lines = lines_of((folder / "app.log").read_text())
    error_lines = lines_of((folder / "error.log").read_text())
    job_lines = lines_of((folder / "jobs.log").read_text())
    assert any(line["logger"] == "kisht.request" and line["route"] == "/healthz" for line in app_lines)
    assert not any(line["logger"] == "kisht.jobs" for line in app_lines)  # job lines have their own file
    assert {line["level"] for line in error_lines} == {"ERROR"}
    assert [line["message"] for line in error_lines] == ["something broke for user adm", "day-end 2026-01-01 failed"]
    assert [line["message"] for line in job_lines] == ["day-end 2026-01-01 started", "day-end 2026-01-01 failed"]
    app.extensions["kisht.engine"].dispose()


def test_rotation_by_size_by_day_and_retention(tmp_path):
    handler = logs.SizeAndTimeRotatingFileHandler(tmp_path / "app.log", max_bytes=300, retention_days=7,
                                                  keep_files=3)
    handler.setFormatter(logs.KishtJsonFormatter())
    logger = logging.Logger("rotation-test")
    logger.addHandler(handler)
    for n in range(40):
        logger.info("line %d with some padding to grow the file", n)
    assert len(handler.rotated_files()) == 3  # older ones beyond LOG_KEEP_FILES are gone
    assert (tmp_path / "app.log").stat().st_size < 300 + 200  # rotated once past the limit: at most one line over
    # Past midnight IST the file rotates even when small.
    before = set(handler.rotated_files())
    handler._next_rollover = time.time() - 1
    logger.info("a new day")
    assert set(handler.rotated_files()) != before
    assert "a new day" in (tmp_path / "app.log").read_text()
    # Rotated files older than LOG_RETENTION_DAYS are deleted at the next rotation, whatever their number.
    old = handler.rotated_files()[0]
    os.utime(old, (time.time() - 8 * 86400, time.time() - 8 * 86400))
    handler._next_rollover = time.time() - 1
    logger.info("another day")
    assert not old.exists()
    handler.close()


def test_a_second_process_rotating_the_file_is_followed(tmp_path):
    """Two gunicorn workers share app.log: when one rotates, the other writes to the new file."""
    first = logs.SizeAndTimeRotatingFileHandler(tmp_path / "app.log", 10_000, 7, 5)
    second = logs.SizeAndTimeRotatingFileHandler(tmp_path / "app.log", 10_000, 7, 5)
    for handler in (first, second):
        handler.setFormatter(logging.Formatter("%(message)s"))
    record = lambda text: logging.LogRecord("x", logging.INFO, __file__, 1, text, None, None)  # noqa: E731
    first.emit(record("one"))
    first.doRollover()
    second.emit(record("two"))
    first.emit(record("three"))
    assert (tmp_path / "app.log").read_text().split() == ["two", "three"]
    first.close()
    second.close()


def test_bad_log_settings_are_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LOG_OUTPUT", "syslog")
    with pytest.raises(SystemExit):
        create_app({"APP_ENV": "test", "DATABASE_URL": f"sqlite:///{tmp_path / 'k.db'}"})
    assert "LOG_OUTPUT must be files or stdout, not 'syslog'" in capsys.readouterr().err
    monkeypatch.setenv("LOG_OUTPUT", "stdout")
    monkeypatch.setenv("LOG_MAX_BYTES", "ten")
    with pytest.raises(SystemExit):
        create_app({"APP_ENV": "test", "DATABASE_URL": f"sqlite:///{tmp_path / 'k.db'}"})
    assert "LOG_MAX_BYTES must be a whole number" in capsys.readouterr().err


def _every_pattern(text: str) -> str:
    """redact() without its quick tests: every pattern, always."""
    text = logs._BEARER.sub(r"\1 [REDACTED]", text)
    for pattern, replacement in logs._SECRET_VALUES:
        text = pattern.sub(replacement, text)
    text = logs._JWT.sub("[REDACTED-JWT]", text)
    text = logs._URL_PASSWORD.sub(r"\1[REDACTED]\2", text)
    return logs._PHONE.sub(lambda m: f"{m.group(1)}******{m.group(3)}", text)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from([
    "password", "PassWord", "Session", "TOKEN", "api-key", "OTP", "bearer", "Basic", "eyJ", "eyJhbGciOiJIUzI1NiJ9",
    ".", "://", "@", ":", "=", " ", '"', "'", "{", "}", "\\", "-", "user", "pg", "9876543210", "+91", "98765",
    "43210", "abcde", "12345", "x"]), max_size=20).map("".join))
def test_the_quick_tests_never_skip_a_pattern_that_would_match(text):
    assert logs.redact(text) == _every_pattern(text)


def test_a_request_line_is_left_as_it_is():
    line = ('{"message": "GET /loans/<number> 200", "user": "pune01.collector3", "route": "/loans/<number>", '
            '"status": 200, "latency_ms": 12.3, "ip": "127.0.0.1", "request_id": "0a1b2c3d4e5f6a7b8c9d0a1b2c3d4e5f"}')
    assert logs.redact(line) == line
