"""``stgcn serve [--checkpoint C] [--host 127.0.0.1 --port 8000]``: the local web app (page + JSON API).

Upload a video or a ``.npy`` skeleton array in the browser and see the annotated video, each
person's labels over time and the top-k table; programs POST the same file to ``/api/predict``.
Needs the ``[web]`` extra (and ``[video]`` for videos).
"""

from __future__ import annotations

import argparse
import os
import sys

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="local web app: upload a video or skeleton, see labels (JSON API too)",
                       description=__doc__.split("\n\n", 1)[1] if __doc__ else None)
    p.add_argument("--checkpoint", help="stgcn checkpoint (or an official one with --official); default: the "
                                        "shipped model (`stgcn models`)")
    p.add_argument("--official", action="store_true", help="the checkpoint is the official Kinetics-400 ST-GCN")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 opens it to the network)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="inference worker processes, i.e. requests served at once (default 1); more get 503")
    p.add_argument("--threads", type=int, metavar="N", help="torch threads per worker (default: cores / workers)")
    p.add_argument("--max-upload-mb", type=float, default=200.0, help="largest upload accepted (default 200)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds of inference per request (default 300)")
    p.add_argument("--max-frames", type=int, default=3000,
                   help="frames of a video read (the rest is cut) and of a skeleton array accepted (default 3000)")
    p.add_argument("--topk", type=int, default=5)
    p.set_defaults(func=run)


def settings_from(args: argparse.Namespace):
    from ..errors import ConfigError
    from ..web.app import ServeSettings

    for name in ("workers", "max_frames", "topk"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")
    if args.max_upload_mb <= 0 or args.timeout <= 0:
        raise ConfigError("--max-upload-mb and --timeout must be positive")
    return ServeSettings(slots=args.workers, max_upload_bytes=int(args.max_upload_mb * 1e6), timeout_s=args.timeout,
                         max_frames=args.max_frames, topk=args.topk)


def run(args: argparse.Namespace) -> int:
    from ..errors import require
    from .shipped import checkpoint_or_shipped

    for module in ("starlette", "uvicorn", "python_multipart"):
        require(module, "web")
    import uvicorn

    from ..web.app import create_app
    from ..web.workers import ModelSource

    settings = settings_from(args)
    threads = args.threads or max(1, (os.cpu_count() or 1) // settings.slots)
    source = ModelSource(checkpoint_or_shipped(args, "serve"), official=args.official, threads=threads)
    if args.host not in LOCAL_HOSTS:
        print(f"stgcn serve: listening on {args.host}: anyone who can reach this machine can upload files",
              file=sys.stderr)
    print(f"stgcn serve: loading the model in {settings.slots} worker(s), then http://{args.host}:{args.port}/",
          file=sys.stderr)
    uvicorn.run(create_app(source, settings), host=args.host, port=args.port, log_level="info")
    return 0
