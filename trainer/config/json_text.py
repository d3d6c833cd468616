"""JSON text from a user's file, parsed so that every failure says where it is.

``json.loads`` raises ``JSONDecodeError`` (with a line and column) for bad syntax, but three
files escape it with other errors and no position: bytes that are not UTF-8
(``UnicodeDecodeError``), nesting deeper than Python's recursion limit (``RecursionError``) and
an integer longer than Python converts (``ValueError: Exceeds the limit (4300 digits)``). All
three become a ``JSONDecodeError`` here, so a config reader or a dataset reader has one error to
catch and can name the line. Light module: the standard library only.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

_LONG_INT_DIGITS = sys.get_int_max_str_digits() or 4300
_LONG_INT = re.compile(rf"-?\d{{{_LONG_INT_DIGITS + 1},}}")


def parse_json(text: str | bytes) -> Any:
    """``json.loads(text)``; every failure is a ``json.JSONDecodeError`` with a position.

    Bytes are read as UTF-8, a byte order mark (which Windows editors add) skipped."""
    if isinstance(text, bytes):
        text = _decode(text)
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        depth, pos = _deepest(text)
        raise json.JSONDecodeError(
            f"nested {depth} levels deep, deeper than can be read", text, pos
        ) from None
    except ValueError:
        # the only other ValueError json.loads raises: an integer over the digit limit
        found = _LONG_INT.search(text)
        raise json.JSONDecodeError(
            f"a number with more than {_LONG_INT_DIGITS} digits",
            text,
            found.start() if found else 0,
        ) from None


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        before = data[: err.start].decode("utf-8-sig", "replace")
        raise json.JSONDecodeError(
            f"not UTF-8 text (byte 0x{data[err.start]:02x}); save the file as UTF-8",
            before,
            len(before),
        ) from None


def _deepest(text: str) -> tuple[int, int]:
    """The deepest nesting of arrays and objects in ``text``, and where it is first reached.

    Only runs after a RecursionError, so a slow character loop costs nothing in the usual case;
    brackets inside strings do not count."""
    depth = deepest = where = 0
    in_string = escaped = False
    for pos, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > deepest:
                deepest, where = depth, pos
        elif char in "]}":
            depth -= 1
    return deepest, where
