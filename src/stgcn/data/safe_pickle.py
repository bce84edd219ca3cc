"""Loading pickles without running their code.

A pickle names the callables that rebuild its objects, and ``pickle.load`` calls them: a crafted
file can run ``os.system``. The unpickler here resolves only the globals a numpy array and plain
containers need and refuses every other name with a :class:`DataError`.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

from ..errors import DataError

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),  # protocol 5 arrays
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("builtins", "list"),
    ("builtins", "dict"),
    ("builtins", "tuple"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "bytearray"),
    ("collections", "OrderedDict"),
    ("_codecs", "encode"),  # how protocol-2 pickles store bytes (numpy array payloads)
}


def _numpy_global(name: str):
    # numpy 2 renamed numpy.core to numpy._core; pickles written by either name load on both.
    import numpy as np

    try:
        from numpy._core import multiarray, numeric
    except ImportError:
        from numpy.core import multiarray, numeric
    return {"_reconstruct": multiarray._reconstruct, "scalar": multiarray.scalar,
            "_frombuffer": numeric._frombuffer, "ndarray": np.ndarray, "dtype": np.dtype}[name]


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, fh, file: str):
        super().__init__(fh)
        self._file = file

    def find_class(self, module: str, name: str):
        if module == "__builtin__":  # Python 2 name, written by protocol < 3
            module = "builtins"
        if (module, name) in _ALLOWED:
            if module.startswith("numpy"):
                return _numpy_global(name)
            return super().find_class(module, name)
        # numpy>=2 dtype classes (numpy.dtypes.Float32DType) rebuild a dtype, nothing more.
        if module == "numpy.dtypes" and name.endswith("DType") and name.isidentifier():
            return super().find_class(module, name)
        raise DataError(f"pickle refers to the global '{module}.{name}', which is not allowed "
                        f"(only numpy arrays and builtin containers may be loaded)", file=self._file)

    def persistent_load(self, pid):
        raise DataError("pickle uses persistent ids, which are not allowed", file=self._file)


def safe_loads(data: bytes, file: str = "<bytes>"):
    """Unpickle ``data`` admitting only numpy arrays, numpy scalars and builtin containers."""
    try:
        return _RestrictedUnpickler(io.BytesIO(data), file).load()
    except DataError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, MemoryError, OverflowError, RecursionError, UnicodeDecodeError) as exc:
        raise DataError(f"not a readable pickle: {type(exc).__name__}: {exc}", file=file) from None


def safe_load(path: str | Path):
    """Read and unpickle a file with :func:`safe_loads`."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read file: {exc.strerror or exc}", file=str(path)) from None
    return safe_loads(data, file=str(path))
