"""The Kisht app behind a 300 ms delay, for the graceful-shutdown test: requests are surely in flight.

Each request's X-Request-ID is appended to $KISHT_STARTED_FILE when the server starts on it, so the test
can tell a request the server took on (must be answered) from one it never saw (safe to retry).
"""
import os
import time

from wsgi import app as kisht_app

STARTED = os.environ["KISHT_STARTED_FILE"]


def app(environ, start_response):
    with open(STARTED, "a") as handle:
        handle.write(environ.get("HTTP_X_REQUEST_ID", "-") + "\n")
    time.sleep(0.3)
    return kisht_app(environ, start_response)
