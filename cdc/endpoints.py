"""/metrics, /healthz and /readyz over HTTP, from a daemon thread (what they answer: cdc/metrics.py).

The server starts with ``wpcdc stream``, before the startup checks, so the probes and Prometheus see
a process that waits for its servers as alive and not ready (``/readyz`` says what it waits for)
rather than as no process at all.
"""

from __future__ import annotations

import asyncio
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from cdc import metrics


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            body, status, ctype = generate_latest(), 200, CONTENT_TYPE_LATEST
        elif path in ("/healthz", "/readyz"):
            ok, why = metrics.liveness() if path == "/healthz" else metrics.readiness()
            body, status, ctype = f"{why}\n".encode(), 200 if ok else 503, "text/plain; charset=utf-8"
        else:
            body, status, ctype = b"not found: try /metrics, /healthz or /readyz\n", 404, "text/plain"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return


def _tick_on(loop: asyncio.AbstractEventLoop) -> None:
    """Liveness: a callback on the event loop, every second, for as long as the loop runs."""

    def tick() -> None:
        metrics.heartbeat()
        loop.call_later(1.0, tick)

    loop.call_soon_threadsafe(tick)


def serve(port: int, host: str = "0.0.0.0") -> ThreadingHTTPServer:
    """Serve /metrics, /healthz and /readyz from a daemon thread; call from the event loop."""
    server = ThreadingHTTPServer((host, port), _Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    try:
        _tick_on(asyncio.get_running_loop())
    except RuntimeError:  # no loop (tests): liveness then follows heartbeat() calls only
        pass
    return server
