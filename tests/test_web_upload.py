"""stgcn.web.upload: sniffing by content, display names, and bounded streamed bodies (unit level);
a 2 GB upload against a live server is refused early without being sent or stored."""

from __future__ import annotations

import asyncio
import json
import select
import socket
import time

import numpy as np
import pytest

from web_support import app_for, live_server, npy_bytes

upload = pytest.importorskip("stgcn.web.upload", reason="needs the [web] extra")
Refused, check_kind, display_name, receive_upload, sniff = (upload.Refused, upload.check_kind, upload.display_name,
                                                            upload.receive_upload, upload.sniff)
BOUNDARY = "testboundary123"


def multipart(filename: str, data: bytes, field: str = "file", parts: int = 1) -> bytes:
    part = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + b"\r\n"
    return part * parts + f"--{BOUNDARY}--\r\n".encode()


def receive(body: bytes, folder, max_bytes: int = 1_000_000, chunk: int = 7, headers=None):
    async def stream():
        for i in range(0, len(body), chunk):
            yield body[i:i + chunk]

    h = {"content-type": f"multipart/form-data; boundary={BOUNDARY}", **(headers or {})}
    return asyncio.run(receive_upload(h, stream(), folder, max_bytes))


def test_sniff_by_content():
    assert sniff(b"\x93NUMPY\x01\x00") == "skeleton"
    assert sniff(b"\x00\x00\x00\x20ftypisom") == "video"
    assert sniff(b"\x1a\x45\xdf\xa3\x01\x00") == "video"
    assert sniff(b"RIFF\x00\x00\x00\x00AVI LIST") == "video"
    assert sniff(b"hello world, not a video") is None
    assert sniff(b"") is None
    with pytest.raises(Refused, match="the name says a video, but the content is a NumPy") as e:
        check_kind("clip.mp4", b"\x93NUMPY\x01\x00")
    assert e.value.status == 415
    with pytest.raises(Refused, match="the name says a NumPy .npy array, but the content is a video"):
        check_kind("x.npy", b"\x00\x00\x00\x20ftypisom")
    with pytest.raises(Refused, match="not a NumPy .npy array: its first bytes"):
        check_kind("x.npy", b"plain text here!")
    assert check_kind("no-suffix", b"\x00\x00\x00\x20ftypisom") == "video"


def test_display_name_keeps_no_path():
    assert display_name("../../x.npy") == "x.npy"
    assert display_name("..\\..\\win\\evil.mp4") == "evil.mp4"
    assert display_name("/etc/passwd") == "passwd"
    assert display_name("a\x00b\nc.npy") == "abc.npy"
    assert display_name("..") == "upload" and display_name(None) == "upload"


def test_the_file_lands_in_the_folder_under_a_fixed_name(tmp_path):
    data = npy_bytes(np.zeros((5, 20, 3), np.float32))
    up = receive(multipart("../../evil.npy", data), tmp_path)
    assert (up.kind, up.filename, up.size) == ("skeleton", "evil.npy", len(data))
    assert up.path == tmp_path / "upload" and up.path.read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["upload"]
    assert not (tmp_path.parent.parent / "evil.npy").exists()


@pytest.mark.parametrize(("body", "status", "match"), [
    (multipart("a.npy", b""), 400, "empty"),
    (multipart("a.npy", b"x", field="other"), 400, "no file"),
    (multipart("a.mp4", b"just some text that is long enough"), 415, "not a video"),
    (multipart("short.bin", b"abc"), 415, "not a video or a .npy"),
    (multipart("a.npy", b"\x93NUMPY" + b"\0" * 20, parts=2), 400, "one file"),
])
def test_refused_bodies(tmp_path, body, status, match):
    with pytest.raises(Refused, match=match) as e:
        receive(body, tmp_path)
    assert e.value.status == status


def test_size_is_bounded_while_streaming(tmp_path):
    big = b"\x93NUMPY" + b"\0" * 5000
    with pytest.raises(Refused, match="passed") as e:
        receive(multipart("a.npy", big), tmp_path, max_bytes=1000, chunk=100)
    assert e.value.status == 413 and (tmp_path / "upload").stat().st_size <= 1000
    with pytest.raises(Refused, match="2000 MB") as e:  # refused from the header, before a byte is read
        receive(b"", tmp_path, max_bytes=1000, headers={"content-length": str(2_000_000_000)})
    assert e.value.status == 413
    with pytest.raises(Refused, match="multipart/form-data") as e:
        asyncio.run(receive_upload({"content-type": "application/json"}, None, tmp_path, 1000))
    assert e.value.status == 415


def _response(sock: socket.socket, timeout: float = 30.0) -> tuple[int, dict]:
    data = b""
    deadline = time.monotonic() + timeout
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
        if time.monotonic() > deadline:
            break
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body[:_length(data)] or b"{}")


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


GB2 = 2_000_000_000


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from demo_support import make_checkpoint

    ckpt = make_checkpoint(tmp_path_factory.mktemp("web") / "tiny.pt")
    app = app_for(ckpt, max_upload_bytes=1_000_000)
    with live_server(app) as url:
        yield url, app.state.server


def _connect(url: str) -> socket.socket:
    host, port = url.rsplit("//", 1)[1].split(":")
    return socket.create_connection((host, int(port)), timeout=30)


def test_a_2gb_upload_announced_by_its_length_is_refused_before_its_body(server):
    url, state = server
    with _connect(url) as s:
        s.sendall(b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                  + f"Content-Length: {GB2}\r\n\r\n".encode() + b"--b\r\n")
        status, doc = _response(s)
    assert status == 413 and "the upload is 2000 MB; this server takes at most 1 MB" in doc["error"]
    assert not list((state.root / "jobs").iterdir())  # the job folder is gone


def test_a_2gb_streamed_upload_is_cut_off_after_the_limit(server):
    """Chunked, with no length: the server reads until the limit, answers 413 and stops reading;
    the client stops at the answer, having sent a few MB of the 2 GB."""
    url, state = server
    chunk = b"\0" * 65536
    sent = 0
    with _connect(url) as s:
        s.sendall(b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.npy"\r\n\r\n\x93NUMPY'
        s.sendall(b"%x\r\n%s\r\n" % (len(head), head))
        deadline = time.monotonic() + 120
        try:
            while sent < GB2 and time.monotonic() < deadline:
                if select.select([s], [], [], 0)[0]:
                    break  # the server answered
                s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed the connection after answering
        status, doc = _response(s)
    assert status == 413 and "passed 1 MB" in doc["error"]
    assert sent < 50_000_000  # stopped early, far from 2 GB
    assert not list((state.root / "jobs").iterdir())
