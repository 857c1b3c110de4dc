"""The app a job runs in, and where job log lines go.

Job modules never create the app at import time. A worker process creates it once (`kisht worker` hands
over the app its command already built); a job called where no app context exists gets the process's app,
made on first use. RQ forks a work horse per job: the horse inherits the app, but not the parent's
database connections (the pool is dropped on first use in the new process).
"""
from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from logging.handlers import RotatingFileHandler
from pathlib import Path

from flask import Flask, current_app, has_app_context

from webapp.logs import FORMAT, RequestIdFilter

log = logging.getLogger("kisht.jobs")
_app: Flask | None = None
_app_pid: int | None = None


def set_app(app: Flask) -> None:
    """Use this app for every job run by this process (and the work horses it forks); log like a job process."""
    global _app, _app_pid
    _app, _app_pid = app, os.getpid()
    configure_logging(app)


def get_app() -> Flask:
    """The process's app, created from the environment on first use."""
    if _app is None:
        from webapp import create_app

        set_app(create_app())
    return _app


def _own_connections(app: Flask) -> None:
    global _app_pid
    if app is _app and _app_pid != os.getpid():
        # A forked work horse: connections pooled by the parent belong to the parent; open our own.
        app.extensions["kisht.engine"].dispose(close=False)
        _app_pid = os.getpid()


@contextmanager
def app_context():
    """The current app context if there is one (a request in embedded mode, a CLI command), else the process's app."""
    if has_app_context():
        app = current_app._get_current_object()
        _own_connections(app)
        yield app
        return
    app = get_app()
    _own_connections(app)
    with app.app_context():
        yield app


def configure_logging(app: Flask) -> None:
    """In a process that runs jobs, "kisht.jobs" writes to its own rotating file and to stdout.

    Worker, scheduler and `kisht jobs run` call this; a job run inside a web request (embedded mode) logs
    with the web process.
    """
    path = Path(app.config["JOB_LOG_FILE"])
    if any(getattr(h, "kisht_jobs", None) == str(path) for h in log.handlers):
        return
    for handler in [h for h in log.handlers if getattr(h, "kisht_jobs", None)]:
        log.removeHandler(handler)
        handler.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    formatter = logging.Formatter(FORMAT)
    handlers = [RotatingFileHandler(path, maxBytes=10 * 1024 * 1024, backupCount=10, encoding="utf-8"),
                _Stdout()]
    for handler in handlers:
        handler.kisht_jobs = str(path)
        handler.setFormatter(formatter)
        handler.addFilter(RequestIdFilter())
        log.addHandler(handler)
    log.setLevel(app.config["LOG_LEVEL"])
    log.propagate = False  # the root handler would print every line a second time


class _Stdout(logging.StreamHandler):
    """Writes to sys.stdout as it is at each line (test runners and click swap it)."""

    def __init__(self):
        super().__init__(sys.stdout)

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, _value):
        pass
