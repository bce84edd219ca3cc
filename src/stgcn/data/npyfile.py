"""Loading ``.npy`` data that may be damaged or hostile, without trusting its header.

``np.load`` parses the header with ``ast.literal_eval`` and then allocates the array the header
claims. On a damaged header that raises whatever the tokenizer or parser meets (``tokenize.TokenError``,
``SyntaxError``, ``TypeError``, ...), and a 192-byte file whose header claims 10^9 frames makes it
allocate hundreds of GiB (``MemoryError``, or worse, swapping). :func:`load_npy` reads the header
first, checks that the file really holds the bytes the header promises, and only then loads; every
failure is a ``ValueError`` (or ``OSError`` for the file itself), which the callers turn into
:class:`~stgcn.errors.DataError` naming the file.
"""

from __future__ import annotations

import io
import math
import tokenize
import zipfile
from pathlib import Path
from typing import BinaryIO

import numpy as np

# What numpy's header parsing can raise on damaged bytes (besides ValueError): the tokenizer and
# literal_eval errors, odd values in the header dict, a too deeply nested header.
HEADER_ERRORS = (ValueError, SyntaxError, tokenize.TokenError, TypeError, KeyError, IndexError,
                 OverflowError, EOFError, RecursionError, MemoryError)
_CHUNK = 1 << 20


def check_npy_header(fp: BinaryIO, size: int) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Read the header of the ``.npy`` stream ``fp`` (positioned at its start, ``size`` bytes long)
    and check that the data it announces fits in the stream. Returns (shape, fortran_order, dtype).

    Raises ValueError with a readable reason; the stream is left after the header.
    """
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
        else:
            raise ValueError(f"unsupported .npy format version {version[0]}.{version[1]}")
    except ValueError:
        raise
    except HEADER_ERRORS as exc:
        raise ValueError(f"damaged .npy header ({type(exc).__name__}: {exc})") from None
    if not dtype.hasobject:  # object arrays are refused by np.load(allow_pickle=False) itself
        needed = math.prod(shape) * dtype.itemsize
        available = size - fp.tell()
        if needed > available:
            raise ValueError(f"header claims an array of shape {shape} and dtype {dtype} ({needed} bytes) "
                             f"but the file holds only {max(available, 0)} bytes of data")
    return shape, fortran, dtype


def load_npy(path: str | Path, *, mmap_mode: str | None = None) -> np.ndarray:
    """``np.load(path, allow_pickle=False, mmap_mode=...)`` after :func:`check_npy_header`.

    Raises OSError when the file cannot be read, ValueError for anything wrong with its content.
    """
    path = Path(path)
    with open(path, "rb") as f:
        size = f.seek(0, io.SEEK_END)
        f.seek(0)
        if f.read(len(np.lib.format.MAGIC_PREFIX)) == np.lib.format.MAGIC_PREFIX:
            f.seek(0)
            check_npy_header(f, size)
        # Anything else is np.load's to refuse as before (a pickle is refused, a zip opened lazily).
    return _guarded(np.load, path, mmap_mode=mmap_mode, allow_pickle=False)


def load_npz_member(z: zipfile.ZipFile, member: str) -> np.ndarray:
    """The array stored as ``member`` (e.g. ``"x.npy"``) of an open ``.npz`` archive. Its header is
    checked against the member's uncompressed size (``ZipInfo.file_size``) before anything is
    allocated, and the data is read as it decompresses, so a size the archive lies about cannot make
    it allocate more than the archive really holds."""
    info = z.getinfo(member)
    with z.open(info) as f:
        shape, fortran, dtype = check_npy_header(f, info.file_size)
        if dtype.hasobject:
            raise ValueError("Object arrays cannot be loaded when allow_pickle=False")
        count = math.prod(shape)
        needed = count * dtype.itemsize
        data = bytearray()
        try:
            while len(data) < needed:  # in bounded pieces: one read(needed) could allocate it all
                piece = f.read(min(needed - len(data), _CHUNK))
                if not piece:
                    break
                data += piece
        except (EOFError, RuntimeError) as exc:
            raise ValueError(f"damaged archive member {member!r}: {exc}") from None
        if len(data) != needed:
            raise ValueError(f"member {member!r} is cut short: {len(data)} of {needed} bytes of data")
    try:
        arr = np.frombuffer(data, dtype=dtype, count=count) if count else np.empty(0, dtype)
        arr = arr.reshape(shape[::-1]).transpose() if fortran else arr.reshape(shape)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"cannot read member {member!r} as an array: {exc}") from None
    return arr  # writable (it views the bytearray), as np.load gives it


def _guarded(fn, *args, **kwargs) -> np.ndarray:
    try:
        return fn(*args, **kwargs)
    except (ValueError, OSError, zipfile.BadZipFile):
        raise
    except HEADER_ERRORS as exc:
        raise ValueError(f"damaged .npy file ({type(exc).__name__}: {exc})") from None
