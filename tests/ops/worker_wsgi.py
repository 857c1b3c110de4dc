"""Answers with the CPU niceness of the thread serving the request (the read-priority test), or on /frozen with
the number of objects the worker froze out of garbage collection."""
import gc
import os
import threading


def app(environ, start_response):
    if environ["PATH_INFO"] == "/frozen":
        answer = gc.get_freeze_count()
    else:
        answer = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(answer).encode()]
