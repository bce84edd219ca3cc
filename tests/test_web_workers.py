"""stgcn.web.workers: bounded slots, a model that cannot load, and a job over the time limit stopped
by killing its process (the slot comes back with a fresh one)."""

from __future__ import annotations

import dataclasses
import io

import pytest

from stgcn.web.workers import Busy, ModelSource, WorkerFailed, WorkerPool
from web_support import TestClient, app_for, npy_bytes, skeleton


def test_a_model_that_cannot_load_is_named(tmp_path):
    pool = WorkerPool(ModelSource(str(tmp_path / "missing.pt")), slots=1)
    try:
        with pytest.raises(WorkerFailed, match="could not load the model: CheckpointError: .*missing.pt: checkpoint "
                                               "not found"):
            pool.wait_ready()
    finally:
        pool.close()


def test_slots_bound_the_concurrency(checkpoint):
    pool = WorkerPool(ModelSource(str(checkpoint)), slots=2)
    try:
        assert pool.wait_ready()["layout"] == "kinect-v1"
        with pool.reserve(), pool.reserve():
            assert pool.running == 2
            with pytest.raises(Busy, match="all 2 inference slot"), pool.reserve():
                pass
        assert pool.running == 0
    finally:
        pool.close()
    assert not any(s.process.is_alive() for s in pool.slots)


@pytest.mark.slow
@pytest.mark.video
def test_a_job_over_the_time_limit_is_stopped_and_the_server_goes_on(checkpoint):
    pytest.importorskip("mediapipe")
    from stgcn.inference.demo import bundled_video

    with TestClient(app_for(checkpoint, timeout_s=1.0)) as client:
        pool = client.app.state.server.pool
        first = pool.slots[0].process.pid
        r = client.post("/api/predict", files={"file": ("ta_chi.mp4", io.BytesIO(bundled_video().read_bytes()))})
        assert r.status_code == 504 and "longer than 1 s and was stopped" in r.json()["error"]
        assert pool.slots[0].process.pid != first and pool.running == 0  # a fresh worker
        server = client.app.state.server
        server.settings = dataclasses.replace(server.settings, timeout_s=120.0)  # a loaded machine is slow
        ok = client.post("/api/predict", files={"file": ("a.npy", io.BytesIO(npy_bytes(skeleton())))})
        assert ok.status_code == 200 and ok.json()["people"]
