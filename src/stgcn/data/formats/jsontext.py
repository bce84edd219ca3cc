"""JSON text of skeleton files, parsed with numbers bounded by what the data can hold.

``json`` turns a 400-digit integer into a Python int that float32/float64 cannot hold (numpy then
raises OverflowError deep in a reader). Here every integer longer than :data:`MAX_INT_DIGITS`
digits is refused while parsing, as a :class:`DataError` naming the file; no count, index or
coordinate of a skeleton file needs more. Floats that overflow become inf, which the readers reject
as non-finite.
"""

from __future__ import annotations

import json
from typing import Any

from ...errors import DataError

MAX_INT_DIGITS = 15  # float64 holds every integer up to 2**53 (16 digits) exactly


class _TooLong(ValueError):
    pass


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _TooLong(text)
    return int(text)


def loads(data: bytes | str, file: str) -> Any:
    """``json.loads`` that raises :class:`DataError` (naming ``file``) for invalid JSON and for an
    integer of more than :data:`MAX_INT_DIGITS` digits."""
    try:
        return json.loads(data, parse_int=_bounded_int)
    except _TooLong as exc:
        digits = len(str(exc).lstrip("-"))
        raise DataError(f"an integer of {digits} digits (at most {MAX_INT_DIGITS} are accepted): "
                        f"{str(exc)[:20]}...", file=file) from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad UTF-8, nesting too deep
        raise DataError(f"not valid JSON: {exc}", file=file) from None
