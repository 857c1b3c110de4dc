"""Graceful shutdown of gunicorn under load, the deploy script's rollback, and the worker's warm shutdown."""
import contextlib
import http.client
import os
import re
import runpy
import signal
import socket
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import pytest
import redis
from rq import Queue
from sqlalchemy import create_engine, text

from webapp.config import ROOT

VENV_BIN = Path(sys.executable).parent
REDIS_OPS_URL = "redis://127.0.0.1:6379/12"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(url_port: int, path: str = "/healthz", timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", url_port, timeout=2)
            connection.request("GET", path)
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"nothing answered 200 on port {url_port}{path}")


def base_env(tmp_path) -> dict:
    db_url = f"sqlite:///{tmp_path / 'kisht.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "KISHT_TEST"))}
    env.update({"APP_ENV": "test", "DATABASE_URL": db_url, "REDIS_URL": "", "LOG_DIR": str(tmp_path / "logs"),
                "BACKUP_DIR": str(tmp_path / "backups"), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
                "JOB_LOG_FILE": str(tmp_path / "logs" / "jobs.log")})
    return env


def kisht(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(VENV_BIN / "kisht"), *args], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


@contextlib.contextmanager
def one_worker(tmp_path, *args: str, **env_vars: str):
    """gunicorn with the repository's settings and one worker of one thread serving tests/ops/worker_wsgi.py:
    every request is served by the same thread, one after another. Yields the port."""
    env = {**base_env(tmp_path), **env_vars, "PYTHONPATH": str(ROOT / "tests" / "ops")}
    port = free_port()
    server = subprocess.Popen([str(VENV_BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"),
                               "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "1", *args,
                               "worker_wsgi:app"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for(port, "/")
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)


def ask(port: int, method: str, path: str = "/") -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request(method, path, body=b"{}" if method == "POST" else None)
    return int(connection.getresponse().read())


@pytest.mark.parametrize("worker_class", ["sync", "gthread"])  # the default, and threads for those who choose them
def test_reads_run_at_a_lower_cpu_priority_than_writes_and_give_it_back(tmp_path, worker_class):
    with one_worker(tmp_path, "--worker-class", worker_class, GUNICORN_READ_NICENESS="7") as port:
        base = os.getpriority(os.PRIO_PROCESS, 0)
        assert [ask(port, m) for m in ("GET", "POST", "GET", "PUT", "GET", "DELETE")] == \
            [base + 7, base, base + 7, base, base + 7, base]


def test_a_worker_keeps_what_it_loaded_at_start_out_of_garbage_collection(tmp_path):
    # Full collections then walk only what requests leave behind (docs/performance.md, "Garbage collection").
    with one_worker(tmp_path) as port:
        assert ask(port, "GET", "/frozen") > 1000


def test_by_default_each_worker_process_serves_one_request_at_a_time(monkeypatch, tmp_path):
    # A payment must not share a process (and its interpreter lock) with pages: docs/deployment.md.
    for name in ("GUNICORN_WORKERS", "GUNICORN_WORKER_CLASS", "GUNICORN_THREADS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    config = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    assert (config["worker_class"], config["threads"]) == ("sync", 1)
    # A sync worker waiting for PostgreSQL holds no core, so more workers than cores; many more only take turns
    # on the cores and cost every request more CPU (docs/performance.md, ninth machine).
    assert os.cpu_count() < config["workers"] <= 2 * os.cpu_count()


def test_reads_keep_the_normal_priority_where_it_could_not_be_given_back(monkeypatch, tmp_path):
    monkeypatch.setenv("GUNICORN_READ_NICENESS", "7")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))  # the config file sets it when unset
    config = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    restorable = config["priority_restorable"]
    assert restorable(0, 0, 0)  # root
    assert restorable(1000, 20, 0) and restorable(1000, 15, 5)  # LimitNICE=+0, or +5 for a service under nice 5
    assert not restorable(1000, 0, 0) and not restorable(1000, 19, 0)  # the default limit: never back up
    config["pre_request"].__globals__["_may_restore"] = False
    request = types.SimpleNamespace(method="GET")
    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    config["pre_request"](None, request)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before
    assert not getattr(request, "niced", False)


def test_sigterm_under_load_loses_no_request(tmp_path):
    env = base_env(tmp_path)
    assert kisht(env, "db", "upgrade").returncode == 0
    started_file = tmp_path / "started.txt"
    port = free_port()
    env.update({"KISHT_STARTED_FILE": str(started_file), "PYTHONPATH": f"{ROOT}:{ROOT / 'tests' / 'ops'}"})
    server = subprocess.Popen([str(VENV_BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"),
                               "--bind", f"127.0.0.1:{port}", "--workers", "4", "slow_wsgi:app"],  # sync, as deployed
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for(port)
        for _ in range(4):
            wait_for(port)  # spread over the workers
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/metrics")
        metrics = connection.getresponse().read().decode()
        # Multiprocess mode: the counter adds up every worker's requests, whichever worker answers.
        count = float(re.search(r'^kisht_http_requests_total\{endpoint="health.healthz",method="GET",status="200"\} '
                                r'(\S+)$', metrics, re.M).group(1))
        assert count >= 5  # (a first probe that timed out while a worker booted is counted too)
        answered: dict[str, int] = {}
        failed: dict[str, str] = {}
        stop = threading.Event()
        sigterm_at: list[float] = []
        finished_after_sigterm: list[str] = []

        def client(n: int) -> None:
            i = 0
            while not stop.is_set():
                request_id = f"load-{n}-{i:04d}"
                i += 1
                try:
                    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                    connection.request("GET", "/healthz", headers={"X-Request-ID": request_id})
                    response = connection.getresponse()
                    response.read()
                    answered[request_id] = response.status
                    if sigterm_at:
                        finished_after_sigterm.append(request_id)
                except ConnectionRefusedError:
                    return  # the server no longer accepts: a load balancer sends this one elsewhere
                except OSError as error:
                    failed[request_id] = type(error).__name__
                    return

        threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        time.sleep(1.5)
        sigterm_at.append(time.monotonic())
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    log = server.stdout.read().decode()
    started = [line for line in started_file.read_text().split() if line.startswith("load-")]
    assert server.returncode == 0, log
    assert len(answered) >= 12, answered  # there was load
    assert finished_after_sigterm, "no request was in flight when SIGTERM arrived"
    # Every request the server took on was answered, and answered 200.
    assert sorted(set(started) - set(answered)) == [], (failed, log)
    assert set(answered.values()) == {200}
    # A request that failed at the connection never reached the app: retrying it is safe.
    assert not set(failed) & set(started)
    assert "Handling signal: term" in log or "Shutting down" in log


def make_release(root: Path, name: str, web_env: str = "") -> Path:
    """A release directory as deploy.sh expects: its own .venv/bin/kisht and gunicorn (here: the checkout's)."""
    release = root / "releases" / name
    (release / ".venv" / "bin").mkdir(parents=True)
    for tool, extra in (("kisht", ""), ("gunicorn", web_env)):
        script = release / ".venv" / "bin" / tool
        script.write_text(f"#!/bin/sh\ncd {ROOT}\n{extra}\nexec {VENV_BIN / tool} \"$@\"\n")
        script.chmod(0o755)
    return release


@pytest.fixture()
def site(tmp_path):
    """$KISHT_HOME with a live release serving on a port, a restart command, and the environment."""
    home = tmp_path / "home"
    port = free_port()
    env = base_env(tmp_path)
    pidfile = tmp_path / "gunicorn.pid"
    restart = tmp_path / "restart.sh"
    restart.write_text(f"""#!/bin/sh
if [ -f {pidfile} ]; then
  pid=$(cat {pidfile}); kill -TERM "$pid" 2>/dev/null
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  rm -f {pidfile}
fi
"{home}/current/.venv/bin/gunicorn" -c {ROOT / 'gunicorn.conf.py'} --bind 127.0.0.1:{port} --workers 1 \\
  --pid {pidfile} --daemon wsgi:app
""")
    restart.chmod(0o755)
    env.update({"KISHT_HOME": str(home), "HEALTH_URL": f"http://127.0.0.1:{port}/readyz", "HEALTH_TRIES": "15",
                "HEALTH_INTERVAL": "1", "RESTART_CMD": str(restart)})
    good = make_release(home, "r1-good")
    (home / "current").symlink_to(good)
    yield {"home": home, "env": env, "port": port, "good": good}
    if pidfile.exists():
        os.kill(int(pidfile.read_text()), signal.SIGTERM)
        time.sleep(1)


def revision(env: dict) -> str:
    engine = create_engine(env["DATABASE_URL"])
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()


def previous_revision() -> tuple[str, str]:
    from alembic.script import ScriptDirectory
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(ROOT / "migrations"))
    head = ScriptDirectory.from_config(config).get_current_head()
    return head, ScriptDirectory.from_config(config).get_revision(head).down_revision


def deploy(site, release: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(ROOT / "deploy" / "deploy.sh"), str(release)], env=site["env"],
                          capture_output=True, text=True, timeout=600)


def test_a_failing_health_check_rolls_back_release_and_migration(site):
    head, before_head = previous_revision()
    env = site["env"]
    assert kisht(env, "db", "upgrade", before_head).returncode == 0  # the live release's schema
    subprocess.run([env["RESTART_CMD"]], env=env, check=True)
    wait_for(site["port"], "/readyz")
    # The new release cannot reach Redis: /readyz answers 503 once it is live.
    bad = make_release(site["home"], "r2-bad", web_env="export REDIS_URL=redis://127.0.0.1:1/0")
    result = deploy(site, bad)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "2/5 backup with the live release" in out and "verified" in out  # a verified backup came first
    assert f"3/5 migrate from {before_head}" in out
    assert "health check FAILED: rolling back" in out and f"database down to {before_head}" in out
    assert f"rolled back to {site['good']}" in out
    assert (site["home"] / "current").resolve() == site["good"]
    assert revision(env) == before_head  # the migration was undone
    wait_for(site["port"], "/readyz")  # and the previous release serves again
    assert len(list(Path(env["BACKUP_DIR"]).glob("*.manifest.json"))) == 1


def test_a_healthy_release_is_deployed(site):
    head, _ = previous_revision()
    env = site["env"]
    assert kisht(env, "db", "upgrade").returncode == 0
    subprocess.run([env["RESTART_CMD"]], env=env, check=True)
    wait_for(site["port"], "/readyz")
    new = make_release(site["home"], "r2-good")
    result = deploy(site, new)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"deployed {new} at revision {head}" in result.stdout
    assert (site["home"] / "current").resolve() == new
    refused = deploy(site, new)
    assert refused.returncode == 1 and "is already the live release" in refused.stderr
    missing = deploy(site, site["home"] / "releases" / "nope")
    assert missing.returncode == 1 and "does not exist" in missing.stderr


def test_the_worker_finishes_its_job_on_sigterm(tmp_path):
    """Warm shutdown: SIGTERM while a job runs lets it finish; then the worker exits."""
    connection = redis.Redis.from_url(REDIS_OPS_URL)
    connection.flushdb()
    env = dict(base_env(tmp_path), REDIS_URL=REDIS_OPS_URL)
    assert kisht(env, "db", "upgrade").returncode == 0
    job = Queue("default", connection=connection).enqueue("time.sleep", 3)
    worker = subprocess.Popen([str(VENV_BIN / "kisht"), "worker", "--queues", "default"], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while job.get_status(refresh=True) != "started" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert job.get_status() == "started"
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
        output = worker.stdout.read().decode()
        assert job.get_status(refresh=True) == "finished", output  # the job ran to its end
        assert "warm shut down requested" in output.lower(), output
    finally:
        if worker.poll() is None:
            worker.kill()
        connection.flushdb()
