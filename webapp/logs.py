"""Log lines carry the request id (or '-' outside a request)."""
from __future__ import annotations

import logging

from flask import g, has_request_context

FORMAT = "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = g.get("request_id", "-") if has_request_context() else "-"
        return True


def configure(level: str) -> None:
    root = logging.getLogger()
    if any(getattr(h, "kisht", False) for h in root.handlers):
        return
    handler = logging.StreamHandler()
    handler.kisht = True
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(RequestIdFilter())
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
