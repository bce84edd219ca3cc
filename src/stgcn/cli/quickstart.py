"""``stgcn quickstart``: what ``make demo`` runs — prepare the bundled UTKinect data, train with the
small CPU recipe, evaluate, write the report, and run the video demo when the [video] extra is
installed. Finishes with a list of the files to open."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quickstart", help="prepare bundled UTKinect, train, evaluate, report, video demo",
                       description="End-to-end demo on the bundled UTKinect-Action3D (10 classes, Kinect v1, "
                                   "cross-subject split); a few minutes on 2 CPU cores.")
    p.add_argument("--out", default="runs/demo", metavar="DIR")
    p.add_argument("--epochs", type=int, metavar="N", help="override the small recipe's epoch count")
    p.add_argument("--no-video", action="store_true", help="skip the video demo")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import time

    from ..atomic import writable_dir
    from ..engine.config import load_recipe

    t0 = time.perf_counter()
    out = writable_dir(args.out, what="--out")
    data, train_dir, eval_dir = out / "data", out / "train", out / "eval"

    print("[1/4] preparing the bundled UTKinect-Action3D dataset", flush=True)
    from ..data.prepare import prepare
    from ..data.store import open_store

    try:
        open_store(data)
    except Exception:  # noqa: BLE001 - not prepared yet (or incomplete): prepare resumes/rebuilds it
        prepare("utkinect", None, data)

    print("[2/4] training ST-GCN with the 'small' recipe (cross-subject split)", flush=True)
    from ..engine.training import train

    cfg = load_recipe("small")
    cfg.data.path = str(data)
    cfg.data.train_split, cfg.data.val_split = "xsub_train", "xsub_test"
    cfg.train.out = str(train_dir)
    cfg.train.overwrite = True
    if args.epochs:
        cfg.train.epochs = args.epochs
    res = train(cfg.validate())

    # the final model, the one the reported figure scores (best.pt is the epoch the test split picked)
    final_ckpt = res.files["final"]
    print("[3/4] evaluating the final model", flush=True)
    from ..engine.evaluate import evaluate

    ev = evaluate(final_ckpt, data, "xsub_test", out=eval_dir, num_workers=cfg.data.num_workers)

    demo_msg = "skipped (--no-video)"
    if not args.no_video:
        print("[4/4] video demo: pose estimation + ST-GCN on the bundled ta_chi.mp4", flush=True)
        demo_msg = _video_demo(final_ckpt, out / "demo.mp4")
    else:
        print("[4/4] video demo skipped", flush=True)

    f, b = res.metrics["final"], res.metrics["best"]
    minutes = (time.perf_counter() - t0) / 60
    print(f"\nDone in {minutes:.1f} min. UTKinect cross-subject, {ev.metrics['num_samples']} test clips:")
    print(f"  final model (epoch {f['epoch']}): top-1 {100 * f['top1']:.1f}%  top-5 {100 * f['top5']:.1f}%")
    print(f"  best model  (epoch {b['epoch']}): top-1 {100 * b['top1']:.1f}%  (selected on the test split)")
    print("Open:")
    for label, path in (("training report", train_dir / "report.md"), ("curves", train_dir / "curves.png"),
                        ("confusion matrix", train_dir / "confusion.png"),
                        ("evaluation report", eval_dir / "report.md"),
                        ("checkpoint", final_ckpt)):
        print(f"  {label:<18} {path}")
    print(f"  {'video demo':<18} {demo_msg}")
    return 0


def _video_demo(checkpoint, out) -> str:
    try:
        from ..inference.demo import bundled_video, run_demo
    except (ImportError, AttributeError) as exc:
        msg = f"not available ({exc}); install the extra with: pip install 'stgcn[video]'"
        print(f"      {msg}", flush=True)
        return msg
    try:
        run_demo(video=bundled_video(), checkpoint=checkpoint, out=out, json_out=out.with_suffix(".json"),
                 progress=True)
    except (ImportError, AttributeError) as exc:
        msg = f"not available ({exc}); install the extra with: pip install 'stgcn[video]'"
        print(f"      {msg}", flush=True)
        return msg
    return f"{out} (per-window predictions: {out.with_suffix('.json')})"
