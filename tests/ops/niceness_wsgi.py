"""Answers with the CPU niceness of the thread serving the request, for the read-priority test."""
import os
import threading


def app(environ, start_response):
    niceness = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(niceness).encode()]
