"""The app a job runs in, and where job log lines go.

Job modules never create the app at import time. A worker process creates it once (`kisht worker` hands
over the app its command already built); a job called where no app context exists gets the process's app,
made on first use. RQ forks a work horse per job: the horse inherits the app, but not the parent's
database connections (the pool is dropped on first use in the new process).
"""
from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from pathlib import Path

from flask import Flask, current_app, has_app_context

from webapp import logs
from webapp.logs import RequestIdFilter

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
    """In a process that runs jobs, "kisht.jobs" writes JSON lines to its own rotated file and to stdout.

    The file is JOB_LOG_FILE, rotated like the application log (midnight IST or LOG_MAX_BYTES, retention
    LOG_RETENTION_DAYS / LOG_KEEP_FILES); ERROR lines also reach error.log when the process logs to files.
    Worker, scheduler and `kisht jobs run` call this; a job run inside a web request (embedded mode) logs
    with the web process.
    """
    path = Path(app.config["JOB_LOG_FILE"])
    if any(getattr(h, "kisht_jobs", None) == str(path) for h in log.handlers):
        return
    for handler in [h for h in log.handlers if getattr(h, "kisht_jobs", None)]:
        log.removeHandler(handler)
        if not getattr(handler, "kisht", None):  # the shared error.log handler belongs to the root
            handler.close()
    formatter = logs.KishtJsonFormatter()
    handlers = [logs.file_handler(path, app.config), logs._StdoutHandler()]
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(RequestIdFilter())
    error_log = logs.error_file_handler(app.config)
    if error_log is not None:
        handlers.append(error_log)
    for handler in handlers:
        handler.kisht_jobs = str(path)
        log.addHandler(handler)
    log.setLevel(app.config["LOG_LEVEL"])
    log.propagate = False  # the root handler would print every line a second time
