"""The local web app of ``stgcn serve`` (Starlette on uvicorn).

* ``GET /``: the page (upload a video or a ``.npy`` skeleton array; see the annotated video, each
  person's labels over time and the top-k table).
* ``POST /api/predict``: multipart field ``file``; answers JSON: ``people`` (track id -> top-k
  ``{label, score}``), ``scene``, ``timeline`` (track id -> per-window top-1), ``segments`` (track id
  -> ``{label, start, end, score, decided_at}``, 0-based inclusive frames, plus ``delay_s`` for a
  video), ``urls`` of the overlay video and the timeline image. A refused input answers
  4xx JSON ``{"error": ...}``: 400 malformed or empty, 413 too large, 415 not a video / .npy (by its
  bytes), 422 unusable content (wrong shape, NaN, undecodable video), 408 upload too slow, 503 every
  inference slot busy, 504 inference over the time limit.
* ``GET /api/model``, ``GET /api/status``, ``GET /api/jobs/{id}/{file}``.

Everything it writes stays in one temporary folder (``stgcn-serve-*``), removed at shutdown; the
last ``keep_jobs`` results are kept for the page to fetch.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from .jobs import OVERLAY_MP4, TIMELINE_PNG
from .upload import Refused, receive_upload
from .workers import Busy, JobTimeout, ModelSource, WorkerFailed, WorkerPool

_JOB_ID = re.compile(r"[0-9a-f]{32}")
_FILES = {OVERLAY_MP4: "video/mp4", TIMELINE_PNG: "image/png"}


@dataclass(frozen=True)
class ServeSettings:
    """Limits of the server (the ``stgcn serve`` options)."""

    slots: int = 1                  # inference worker processes: requests beyond them get 503
    max_upload_bytes: int = 200_000_000
    upload_timeout_s: float = 120.0
    timeout_s: float = 300.0        # inference time per request
    max_frames: int = 3000          # frames of a video read (the rest is cut), of an array accepted
    topk: int = 5
    keep_jobs: int = 16             # finished results kept for the page


def _error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers or None)


class Server:
    """The app's state: settings, worker pool, the temporary folder and the finished jobs."""

    def __init__(self, source: ModelSource, settings: ServeSettings) -> None:
        self.source, self.settings = source, settings
        self.pool: WorkerPool | None = None
        self.root: Path | None = None
        self.jobs: OrderedDict[str, Path] = OrderedDict()

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette):
        self.root = Path(tempfile.mkdtemp(prefix="stgcn-serve-"))
        (self.root / "jobs").mkdir()
        self.pool = WorkerPool(self.source, self.settings.slots)
        try:
            await anyio.to_thread.run_sync(self.pool.wait_ready)
            yield
        finally:
            self.pool.close()
            shutil.rmtree(self.root, ignore_errors=True)

    # -- routes ----------------------------------------------------------------------------------
    async def page(self, request: Request) -> Response:
        from ..resources import resource_path

        return HTMLResponse(resource_path("web", "index.html").read_text())

    async def model(self, request: Request) -> Response:
        s = self.settings
        return JSONResponse({**self.pool.model, "limits": {
            "max_upload_bytes": s.max_upload_bytes, "timeout_s": s.timeout_s, "max_frames": s.max_frames,
            "slots": s.slots, "topk": s.topk}})

    async def status(self, request: Request) -> Response:
        return JSONResponse({"running": self.pool.running, "capacity": self.pool.capacity})

    async def job_file(self, request: Request) -> Response:
        job_id, name = request.path_params["job_id"], request.path_params["name"]
        folder = self.jobs.get(job_id) if _JOB_ID.fullmatch(job_id) else None
        if folder is None or name not in _FILES or not (folder / name).is_file():
            return _error(404, f"no file {name!r} for job {job_id!r} (results are kept for the last "
                               f"{self.settings.keep_jobs} requests)")
        return FileResponse(folder / name, media_type=_FILES[name])

    async def predict(self, request: Request) -> Response:
        try:
            with self.pool.reserve() as slot:  # refused before the body is read when every slot is busy
                return await self._predict(request, slot)
        except Busy as exc:
            return _error(503, str(exc), **{"Retry-After": "5"})

    async def _predict(self, request: Request, slot) -> Response:
        s = self.settings
        job_id = uuid.uuid4().hex
        folder = self.root / "jobs" / job_id
        folder.mkdir()
        t0 = time.perf_counter()
        try:
            with anyio.fail_after(s.upload_timeout_s):
                upload = await receive_upload(dict(request.headers), request.stream(), folder, s.max_upload_bytes)
            job = {"kind": upload.kind, "path": str(upload.path), "folder": str(folder), "filename": upload.filename,
                   "topk": s.topk, "max_frames": s.max_frames}
            status, value = await anyio.to_thread.run_sync(slot.run, job, s.timeout_s)
        except Refused as exc:
            return self._failed(folder, exc.status, exc.message)
        except TimeoutError:
            return self._failed(folder, 408, f"the upload took longer than {s.upload_timeout_s:.0f} s")
        except ClientDisconnect:
            return self._failed(folder, 400, "the client went away during the upload")
        except JobTimeout:
            return self._failed(folder, 504, f"inference took longer than {s.timeout_s:.0f} s and was stopped "
                                             "(stgcn serve --timeout); try a shorter video")
        except WorkerFailed as exc:
            return self._failed(folder, 500, f"the inference worker failed: {exc}")
        if status == "refused":
            return self._failed(folder, 422, str(value).replace(str(upload.path), upload.filename)
                                .replace(str(folder), ""))
        if status != "ok":
            print(f"stgcn serve: internal error on {upload.filename}:\n{value}", file=sys.stderr)
            return self._failed(folder, 500, "internal error while processing the file (logged by the server)")
        self._keep(job_id, folder)
        urls = {k: f"/api/jobs/{job_id}/{name}" for k, name in value.pop("files").items()}
        return JSONResponse({"id": job_id, **value, "urls": urls, "model": self.pool.model.get("pretrained")
                             or self.pool.model.get("checkpoint"), "elapsed_s": round(time.perf_counter() - t0, 3)})

    def _failed(self, folder: Path, status: int, message: str) -> JSONResponse:
        shutil.rmtree(folder, ignore_errors=True)
        return _error(status, message)

    def _keep(self, job_id: str, folder: Path) -> None:
        self.jobs[job_id] = folder
        while len(self.jobs) > self.settings.keep_jobs:
            _, old = self.jobs.popitem(last=False)
            shutil.rmtree(old, ignore_errors=True)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    return _error(exc.status_code, str(exc.detail))


def create_app(source: ModelSource, settings: ServeSettings | None = None) -> Starlette:
    """The ASGI app serving ``source``'s model within ``settings``' limits."""
    server = Server(source, settings or ServeSettings())
    routes = [Route("/", server.page), Route("/api/model", server.model), Route("/api/status", server.status),
              Route("/api/predict", server.predict, methods=["POST"]),
              Route("/api/jobs/{job_id}/{name}", server.job_file)]
    app = Starlette(routes=routes, lifespan=server.lifespan, exception_handlers={HTTPException: _http_error})
    app.state.server = server
    return app
