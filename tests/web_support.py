"""What the web app tests share: the app on a small checkpoint, a live uvicorn server on a loopback
port, multipart bodies and .npy bytes. Tests that need the [web] extra skip without it."""

from __future__ import annotations

import contextlib
import io
import socket
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("python_multipart")

from starlette.testclient import TestClient  # noqa: E402,F401 (for the tests, after the skips)

from stgcn.web.app import ServeSettings, create_app  # noqa: E402
from stgcn.web.workers import ModelSource  # noqa: E402


def app_for(checkpoint, **settings):
    return create_app(ModelSource(str(checkpoint), threads=1), ServeSettings(**settings))


def npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


def skeleton(t: int = 40, v: int = 20, c: int = 3, m: int | None = None, seed: int = 0) -> np.ndarray:
    """A random-walk skeleton (T, V, C), or (M, T, V, C) with ``m``."""
    rng = np.random.default_rng(seed)
    shape = (t, v, c) if m is None else (m, t, v, c)
    return (rng.normal(0, 0.3, shape) + np.cumsum(rng.normal(0, 0.01, shape), axis=-3)).astype(np.float32)


@contextlib.contextmanager
def live_server(app) -> Iterator[str]:
    """``app`` served by uvicorn on a free 127.0.0.1 port in a thread; yields the base URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 300  # the lifespan waits for the worker to load the model
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        sock.close()
