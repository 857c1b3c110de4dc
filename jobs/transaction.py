"""Jobs own their transactions: one unit of work per step, committed on success, rolled back on error."""
from __future__ import annotations

from typing import Callable, TypeVar

from webapp import db

T = TypeVar("T")


def in_transaction(work: Callable[..., T]) -> T:
    session = db.new_session()
    try:
        result = work(session)
        session.commit()
        return result
    except Exception:
        session.rollback()
        raise
    finally:
        session.close()
