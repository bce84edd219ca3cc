"""The package's own error types.

Every error raised on bad input is a subclass of :class:`StgcnError`, so callers (and the fuzz
tests) can tell "this input is bad" apart from a bug. Messages name the file, the record and what
was expected versus found.
"""

from __future__ import annotations


class StgcnError(Exception):
    """Base class of every error this package raises on purpose."""


class LayoutError(StgcnError, ValueError):
    """A skeleton layout (built-in name or custom YAML) is unknown or invalid."""


class ShapeError(StgcnError, ValueError):
    """A tensor or array does not have the shape, rank or values a model or transform expects."""


class ConfigError(StgcnError, ValueError):
    """A recipe, config file or command-line override is invalid."""


class CheckpointError(StgcnError):
    """A checkpoint cannot be loaded safely or does not match the model."""


class WriteError(StgcnError, OSError):
    """A file could not be written (disk full, permissions); the previous version is unchanged."""

    def __init__(self, message: str, errno: int | None = None):
        OSError.__init__(self, errno, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class MissingExtraError(StgcnError, ImportError):
    """An optional dependency is not installed; the message gives the pip command."""

    def __init__(self, extra: str, module: str):
        super().__init__(
            f"this feature needs the optional dependency '{module}', which is not installed; "
            f"install it with: pip install 'stgcn[{extra}]'"
        )
        self.extra = extra
        self.module = module


class DataError(StgcnError, ValueError):
    """A data file or record cannot be used.

    ``file`` is the offending path (or sample name), ``record`` locates the problem inside it
    (a line number, a frame index, a key), ``reason`` says what is wrong.
    """

    def __init__(self, reason: str, *, file: str | None = None, record: str | int | None = None):
        self.reason = reason
        self.file = None if file is None else str(file)
        self.record = record
        where = []
        if self.file is not None:
            where.append(self.file)
        if record is not None:
            where.append(str(record))
        super().__init__(f"{': '.join(where)}: {reason}" if where else reason)


def require(module: str, extra: str):
    """Import an optional module or raise :class:`MissingExtraError` with the pip command."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(extra, module) from exc
