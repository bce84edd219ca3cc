"""Receiving one uploaded file: streamed, bounded, sniffed, and written only into the job's folder.

The request body is parsed while it arrives (python-multipart's streaming parser, the one Starlette
uses), so an upload over the limit is refused as soon as it is seen — at once from its
Content-Length, else when the bytes read pass the limit — and never held in memory. The part named
``file`` is written to ``<job folder>/upload``: the client's file name is kept for messages only
(its last path component, control characters removed), so ``../../x`` names nothing on disk. The
first bytes decide what the file is (a video container or a NumPy ``.npy`` array); a name whose
suffix claims another kind is refused.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from python_multipart.multipart import MultipartParseError, MultipartParser, parse_options_header

VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".3gp", ".webm", ".mkv", ".avi", ".mpg", ".mpeg"})
SKELETON_SUFFIXES = frozenset({".npy"})
FIELD = "file"
# what a multipart body carries besides the file (boundaries, part headers, small fields)
_OVERHEAD = 64 * 1024
_SNIFF_BYTES = 16


class Refused(Exception):
    """A request the server answers with an HTTP error: ``status`` and a message for people."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Upload:
    path: Path       # where the bytes are (inside the job folder)
    filename: str    # the client's name, for messages only
    size: int
    kind: str        # "video" or "skeleton"


def sniff(head: bytes) -> str | None:
    """``"video"``, ``"skeleton"`` (a .npy array) or None, from a file's first bytes."""
    if head.startswith(b"\x93NUMPY"):
        return "skeleton"
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free"):  # ISO BMFF / QuickTime: mp4, mov, m4v, 3gp
        return "video"
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: webm, mkv
        return "video"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "video"
    if head[:4] in (b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3"):  # MPEG program stream / video
        return "video"
    return None


def display_name(name: str | None) -> str:
    """The client's file name for messages: its last component, printable, at most 100 characters."""
    base = PurePosixPath((name or "").replace("\\", "/")).name
    base = re.sub(r"[\x00-\x1f\x7f]", "", base)[:100]
    return base if base.strip(".") else "upload"


def check_kind(filename: str, head: bytes) -> str:
    """The kind of an upload from its first bytes; :class:`Refused` (415) when it is neither, or not
    what its suffix claims."""
    kind = sniff(head)
    suffix = PurePosixPath(filename).suffix.lower()
    claimed = "video" if suffix in VIDEO_SUFFIXES else "skeleton" if suffix in SKELETON_SUFFIXES else None
    names = {"video": "a video", "skeleton": "a NumPy .npy array", None: "a video or a .npy array"}
    if kind is None:
        raise Refused(415, f"{filename}: not {names[claimed]}: its first bytes {head[:8]!r} are no video container "
                           "(mp4, mov, webm, mkv, avi, mpeg) and no NumPy .npy header")
    if claimed is not None and claimed != kind:
        raise Refused(415, f"{filename}: the name says {names[claimed]}, but the content is {names[kind]}")
    return kind


class _Receiver:
    """The multipart callbacks: headers of each part, the ``file`` part's bytes into one file."""

    def __init__(self, target: Path, max_bytes: int) -> None:
        self.target = target
        self.max_bytes = max_bytes
        self.file = None
        self.filename: str | None = None
        self.size = 0
        self.head = b""
        self.kind: str | None = None
        self._field = b""
        self._value = b""
        self._headers: dict[bytes, bytes] = {}
        self._in_file = False
        self.files = 0

    def callbacks(self) -> dict:
        return {"on_part_begin": self._part_begin, "on_header_field": self._header_field,
                "on_header_value": self._header_value, "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished, "on_part_data": self._data,
                "on_part_end": self._part_end}

    def _part_begin(self) -> None:
        self._headers, self._in_file = {}, False

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._field.lower()] = self._value
        self._field, self._value = b"", b""

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        if params.get(b"name", b"").decode("latin-1") != FIELD:
            return  # other fields are read past and not kept
        self.files += 1
        if self.files > 1:
            raise Refused(400, f"one file per request: the field {FIELD!r} came more than once")
        self.filename = display_name(params.get(b"filename", b"").decode("utf-8", "replace"))
        self._in_file = True
        self.file = open(self.target, "wb")  # noqa: SIM115 - closed in _part_end / close()

    def _data(self, data: bytes, start: int, end: int) -> None:
        if not self._in_file:
            return
        chunk = data[start:end]
        if self.size + len(chunk) > self.max_bytes:
            raise Refused(413, f"{self.filename}: the file passed {self.max_bytes / 1e6:.0f} MB, the most this "
                               "server takes (stgcn serve --max-upload-mb)")
        if self.kind is None and len(self.head) < _SNIFF_BYTES:
            self.head += chunk[:_SNIFF_BYTES - len(self.head)]
            if len(self.head) >= _SNIFF_BYTES:
                self.kind = check_kind(self.filename or "upload", self.head)
        self.file.write(chunk)
        self.size += len(chunk)

    def _part_end(self) -> None:
        if self._in_file:
            self._in_file = False
            self.close()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


async def receive_upload(headers: dict[str, str], body: AsyncIterator[bytes], folder: Path,
                         max_bytes: int) -> Upload:
    """Parse a ``multipart/form-data`` body into ``folder/upload``; :class:`Refused` on anything
    that is not one file of at most ``max_bytes`` bytes, a video or a .npy array."""
    ctype, params = parse_options_header(headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise Refused(415, f"send the file as multipart/form-data in a field named {FIELD!r} "
                           f"(found content type {headers.get('content-type', 'none')!r})")
    limit = max_bytes + _OVERHEAD
    length = headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise Refused(413, f"the upload is {int(length) / 1e6:.0f} MB; this server takes at most "
                           f"{max_bytes / 1e6:.0f} MB (stgcn serve --max-upload-mb)")
    rec = _Receiver(folder / "upload", max_bytes)
    parser = MultipartParser(boundary, rec.callbacks())
    read = 0
    try:
        async for chunk in body:
            read += len(chunk)
            if read > limit:
                raise Refused(413, f"the upload passed {max_bytes / 1e6:.0f} MB, the most this server takes "
                                   "(stgcn serve --max-upload-mb)")
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        raise Refused(400, f"malformed multipart body ({exc})") from None
    finally:
        rec.close()
    if rec.files == 0:
        raise Refused(400, f"no file: send it in a multipart field named {FIELD!r}")
    if rec.size == 0:
        raise Refused(400, f"{rec.filename}: the file is empty (0 bytes)")
    if rec.kind is None:  # shorter than the sniffed prefix
        rec.kind = check_kind(rec.filename or "upload", rec.head)
    return Upload(path=folder / "upload", filename=rec.filename or "upload", size=rec.size, kind=rec.kind)
