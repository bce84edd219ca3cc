"""``stgcn prepare FORMAT [SOURCE] --out DIR``: raw dataset -> prepared store."""

from __future__ import annotations

import argparse
import sys

from ..errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prepare", help="convert a raw skeleton dataset into a prepared store",
        description="Read a dataset with its reader and write a prepared store (memory-mapped frames, "
                    "labels, splits, meta, rejects.csv). Interrupted runs resume when run again with the "
                    "same arguments; the store appears only once complete.")
    p.add_argument("format", help="dataset format / reader name (e.g. ntu60, kinetics, msr-action3d)")
    p.add_argument("source", nargs="?", default=None, help="path of the raw data (file or folder)")
    p.add_argument("--out", required=True, help="output store directory")
    p.add_argument("--workers", type=int, default=2, help="loader processes (default 2; 1 = in-process)")
    p.add_argument("--max-persons", type=int, default=None,
                   help="keep at most this many persons per clip and pad every clip to it "
                        "(default: pad to the dataset's maximum)")
    p.add_argument("--chunk-size", type=int, default=256,
                   help="items per resumable chunk (default 256)")
    p.add_argument("--set", dest="options", action="append", default=[], metavar="KEY=VALUE",
                   help="reader option (repeatable); VALUE is parsed as YAML (numbers, lists, true/false)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def parse_options(pairs: list[str]) -> dict:
    import yaml

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE, got {pair!r}")
        try:
            out[key.strip().replace("-", "_")] = yaml.safe_load(value) if value else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {pair!r}: cannot parse the value: {exc}") from None
    return out


def run(args: argparse.Namespace) -> int:
    from ..data.formats import ntu
    from ..data.prepare import prepare

    if args.format.lower().startswith("ntu") and ntu._ntu_fast is None:
        print(f"stgcn prepare: note: NTU reader: {ntu.reader_backend()}", file=sys.stderr)
    report = prepare(args.format, args.source, args.out, workers=args.workers, max_persons=args.max_persons,
                     chunk_size=args.chunk_size, progress=not args.no_progress, **parse_options(args.options))
    if report.reused_chunks:
        print(f"resumed: {report.reused_chunks} of {report.total_chunks} chunks were already done")
    print(report.summary())
    return 0
