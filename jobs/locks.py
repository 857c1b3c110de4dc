"""A lock per job in Redis: random token, TTL, renewed while the job runs, released only by its owner.

redis-py's Lock does the token and the owner-only release and extend (Lua scripts); a small thread renews
it every third of the TTL, so a long batch cannot lose it, and a killed worker's lock simply expires.
Without Redis (embedded mode) there is no lock; the CronRun database guard still stops a double run.
"""
from __future__ import annotations

import logging
import threading

import redis

log = logging.getLogger("kisht.jobs")
PREFIX = "kisht:lock:"


class LockHeld(Exception):
    def __init__(self, name: str, holder: str | None):
        super().__init__(f"the {name} lock is held by {holder or 'another worker'}")
        self.holder = holder


class JobLock:
    def __init__(self, redis_url: str, name: str, ttl_seconds: int, owner: str):
        self.name, self.ttl, self.owner = name, ttl_seconds, owner
        self.client = redis.Redis.from_url(redis_url) if redis_url else None
        self._lock = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self.lost = False

    def __enter__(self) -> "JobLock":
        if self.client is None:
            return self
        # thread_local=False: the renewal thread must see the token the acquiring thread got.
        self._lock = self.client.lock(PREFIX + self.name, timeout=self.ttl, blocking=False, thread_local=False)
        if not self._lock.acquire(blocking=False):
            raise LockHeld(self.name, holder(self.client, self.name))
        self.client.set(PREFIX + self.name + ":owner", self.owner, ex=self.ttl)
        self._renewer = threading.Thread(target=self._renew, name=f"lock-{self.name}", daemon=True)
        self._renewer.start()
        return self

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                self._lock.extend(self.ttl, replace_ttl=True)
                self.client.set(PREFIX + self.name + ":owner", self.owner, ex=self.ttl)
            except redis.exceptions.LockError:
                self.lost = True  # someone else holds it now: the job stops at its next check
                log.error("lost the %s lock", self.name)
                return
            except redis.RedisError as error:
                log.warning("could not renew the %s lock: %s", self.name, error)

    def still_held(self) -> bool:
        return self.client is None or (not self.lost and self._lock.owned())

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
        if self._lock is not None:
            try:
                self._lock.release()  # only if we still own it: the Lua script compares the token
                self.client.delete(PREFIX + self.name + ":owner")
            except redis.exceptions.LockError:
                pass


def holder(client: redis.Redis | None, name: str) -> str | None:
    """Who holds a job's lock now (for refusals and the admin screen), or None."""
    if client is None:
        return None
    if not client.exists(PREFIX + name):
        return None
    owner = client.get(PREFIX + name + ":owner")
    return owner.decode() if owner else "unknown worker"
