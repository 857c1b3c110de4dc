"""Production start-up checks: each refusal is one clear line and exit status 3."""
import subprocess
import sys

import pytest

from webapp.config import ROOT
from webapp.ops import startup

STRONG = "k" * 10 + "Zq81-xV93-mP20-aL77-wR45"
REDIS_OK = "redis://127.0.0.1:6379/12"


def start_production(env_extra: dict, tmp_path) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "APP_ENV": "production", "DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}",
           "LOG_DIR": str(tmp_path / "logs"), "BACKUP_DIR": str(tmp_path / "backups"), **env_extra}
    return subprocess.run([sys.executable, "-c", "import wsgi"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("env_extra, reason", [
    ({"REDIS_URL": "redis://127.0.0.1:1/0"}, "Redis does not answer (REDIS_URL: ConnectionError)"),
    ({"REDIS_URL": REDIS_OK, "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/kisht"},
     "the database does not answer (DATABASE_URL postgresql+psycopg://nobody@127.0.0.1:1/kisht: OperationalError)"),
    ({"REDIS_URL": REDIS_OK, "METRICS_TOKEN": "short"}, "METRICS_TOKEN is weak"),
    ({"REDIS_URL": REDIS_OK, "LOG_OUTPUT": "syslog"}, "LOG_OUTPUT must be files or stdout"),
    ({"REDIS_URL": REDIS_OK, "BACKUP_KEEP_DAILY": "seven"}, "BACKUP_KEEP_DAILY must be a whole number"),
])
def test_production_refuses_what_cannot_work(tmp_path, env_extra, reason):
    result = start_production({"SECRET_KEY": STRONG, **env_extra}, tmp_path)
    assert result.returncode == 3, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr  # one line, no traceback
    assert result.stderr.startswith(f"Kisht refuses to start: {reason}"), result.stderr


def test_production_starts_and_logs_json_to_files(tmp_path):
    result = start_production({"SECRET_KEY": STRONG, "REDIS_URL": REDIS_OK,
                               "METRICS_TOKEN": "m" * 8 + "0123456789abcdefghijklmnopqrstuv"}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # production logs to files, not the console


def test_the_time_zone_check():
    assert startup.timezone_problem() is None
    assert startup.timezone_problem("Asia/Atlantis") == \
        "the time zone database has no Asia/Atlantis (install the tzdata package)"
    assert startup.timezone_problem("Europe/London") == \
        "the time zone database gives Europe/London an offset other than +05:30 (broken tzdata)"
