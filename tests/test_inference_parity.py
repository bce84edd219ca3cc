"""Every inference path gives the label `stgcn eval` gives, on every test clip of a real dataset.

A small model is trained on the bundled UTKinect (1 person, kinect-v1) and, when ../shared has it,
on SBU Kinect Interaction (2 persons, openni-15). For each test clip the label of

* ``Predictor`` on the raw store clip (``open_store(D).get(i)``),
* ``stgcn predict D#i`` and ``stgcn predict RAW_FILE --format ...`` (the dataset's own file),
* the video path after pose estimation (``predict_people``, what ``predict_video`` runs) and the
  streaming code (``StreamRecognizer``), both fed the same skeletons as a pose source would,
* ONNX Runtime on the exported model (and its logits against torch's),

must equal the label of ``stgcn eval``. The old bugs each break one of these: a phantom zero person
(video, stream, ONNX), a skipped test pipeline (Predictor on an array), a missing --format (raw file).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from stgcn.cli import main
from stgcn.data import open_source
from stgcn.data.prepare import prepare
from stgcn.data.store import open_store
from stgcn.engine.config import RunConfig
from stgcn.inference.mapping import KINECT_DEPTH
from stgcn.inference.pose import Person
from stgcn.inference.predictor import Predictor, predict_people
from stgcn.inference.stream import StreamRecognizer

pytestmark = pytest.mark.slow
PIPE = [{"name": "center"}, {"name": "uniform_sample", "clip_len": 32}]


def _train(store_dir, out, train_split, val_split, epochs):
    from stgcn.engine import train

    cfg = RunConfig()
    cfg.recipe = "parity"
    cfg.model.name = "stgcn-tiny"
    cfg.data.path = str(store_dir)
    cfg.data.train_split, cfg.data.val_split = train_split, val_split
    cfg.data.train_pipeline = PIPE
    cfg.data.test_pipeline = [PIPE[0], {**PIPE[1], "test_mode": True}]
    cfg.data.num_workers = 0
    cfg.optimizer.name, cfg.optimizer.lr = "adam", 0.01
    cfg.scheduler.name = "cosine"
    cfg.train.epochs, cfg.train.batch_size = epochs, 16
    cfg.train.out, cfg.train.progress, cfg.train.tensorboard = str(out), False, False
    return train(cfg.validate()).best_checkpoint


def _as_people(x: np.ndarray, layout: str) -> list[list[Person]]:
    """A store clip (C, T, V, M) as a pose source delivers it: per frame the people seen, whose
    MediaPipe-style world coordinates the stream maps back to Kinect axes (x, y flipped, z moved by
    KINECT_DEPTH); a fixed box per person slot so that the tracker keeps the slots apart."""
    frames = []
    for t in range(x.shape[1]):
        people = []
        for m in range(x.shape[3]):
            if not x[:, t, :, m].any():
                continue
            world = x[:, t, :, m].T * np.float32([-1, -1, 1]) - np.float32([0, 0, KINECT_DEPTH])
            kp = np.zeros((x.shape[2], 3), np.float32)
            kp[:, 0], kp[:, 1], kp[:, 2] = 100 + 300 * m, 100, 1
            box = np.float32([80 + 300 * m, 80, 120 + 300 * m, 120])
            people.append(Person(kp, box, 1.0, world=world.astype(np.float32), layout=layout))
        frames.append(people)
    return frames


def _cli_label(args, capsys) -> str:
    assert main(args) == 0
    line = capsys.readouterr().out.splitlines()[1]
    return line.strip().rsplit(None, 1)[0]


def _onnx(checkpoint, path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from stgcn.export.onnx import export_checkpoint

    export_checkpoint(checkpoint, path, repeat=1, timing_frames=8)
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _parity(checkpoint, store_dir, split, raw_args, tmp_path, capsys) -> dict[str, int]:
    """Labels of every path for every clip of ``split``; returns the number of clips each agreed on."""
    from stgcn.engine import evaluate

    store = open_store(store_dir)
    ev = evaluate(checkpoint, store_dir, split, num_workers=0, progress=False)
    expected = {n: ev.class_names[k] for n, k in zip(ev.names, ev.scores.argmax(1), strict=True)}
    p = Predictor.from_checkpoint(checkpoint)
    sess = _onnx(checkpoint, tmp_path / "model.onnx")
    agree = dict.fromkeys(("predictor", "predict store", "predict file", "video path", "stream", "onnx"), 0)
    worst_onnx = 0.0
    for i in store.split(split):
        x, name = store.get(int(i)), store.names[i]
        want = expected[name]
        got = {"predictor": p(x, 1, layout=store.joint_layout())[0][0],
               "predict store": _cli_label(["predict", f"{store_dir}#{i}", "--checkpoint", str(checkpoint)], capsys),
               "predict file": _cli_label(["predict", *raw_args(name), "--checkpoint", str(checkpoint)], capsys)}
        people = _as_people(x, p.layout.name)
        answer = predict_people(p, iter(people), p.layout, 1)
        got["video path"] = answer.top[0][0] if not answer.nobody else "nobody"
        stream = StreamRecognizer(p, p.layout, window=x.shape[1], stride=10 ** 6, min_frames=10 ** 6,
                                  smoothing="none")
        for frame in people:
            stream.update(frame)
        result = stream.predict_now()
        got["stream"] = result.scene[0][0] if not result.nobody else "nobody"
        prepared = p.prepare(x)
        ort_logits = sess.run(None, {"skeleton": prepared})[0].mean(0)
        torch_logits = p.logits_prepared(prepared).mean(0)
        worst_onnx = max(worst_onnx, float(np.abs(ort_logits - torch_logits).max()))
        got["onnx"] = p.class_names[int(ort_logits.argmax())]
        for path, label in got.items():
            agree[path] += label == want
    assert worst_onnx <= 1e-4
    print(f"\n{split}: {len(store.split(split))} clips; agreeing with stgcn eval: {agree}; "
          f"eval top-1 {ev.metrics['top1']:.3f}; onnx vs torch max abs logit diff {worst_onnx:.1e}")
    return agree


def test_utkinect_every_path_gives_the_eval_label(tmp_path, capsys):
    warnings.simplefilter("ignore")  # the one-time 3D-position warning of the stream
    store_dir = tmp_path / "utk"
    prepare("utkinect", None, store_dir, progress=False)
    checkpoint = _train(store_dir, tmp_path / "run", "xsub_train", "xsub_test", epochs=8)
    items = {it.name: it for it in open_source("utkinect").items}

    def raw_args(name):  # the segment of the sequence file, as the dataset's label file gives it
        it = items[name]
        return [it.path, "--format", "utkinect", "--set", f"start={it.options['start']}",
                "--set", f"end={it.options['end']}"]

    agree = _parity(checkpoint, store_dir, "xsub_test", raw_args, tmp_path, capsys)
    n = len(open_store(store_dir).split("xsub_test"))
    assert agree == dict.fromkeys(agree, n)


def test_sbu_two_persons_every_path_gives_the_eval_label(shared, tmp_path, capsys):
    root = shared / "data" / "sbu_kinect_interaction"
    if not root.is_dir():
        pytest.skip(f"{root} not found")
    warnings.simplefilter("ignore")
    store_dir = tmp_path / "sbu"
    prepare("sbu", str(root), store_dir, progress=False)
    assert open_store(store_dir).get(0).shape[3] == 2
    checkpoint = _train(store_dir, tmp_path / "run", "fold1_train", "fold1_test", epochs=6)
    paths = {it.name: it.path for it in open_source("sbu", str(root)).items}
    agree = _parity(checkpoint, store_dir, "fold1_test", lambda name: [paths[name], "--format", "sbu"], tmp_path,
                    capsys)
    n = len(open_store(store_dir).split("fold1_test"))
    assert agree == dict.fromkeys(agree, n)
