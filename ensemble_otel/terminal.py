"""Text that reaches a terminal or a log: names and values from a shared root are escaped.

A file named ``x\\nOK (strict): 0 violations`` or a heartbeat ``state`` holding ``\\x1b[8m``
must not forge a line or hide one. :func:`escape` is the one function every command uses
on what it prints in text mode; :func:`json_text` makes a name safe for ``orjson``.
"""

from __future__ import annotations

import os
import re

# C0 controls, DEL, C1 controls, and the Unicode line/paragraph separators and bidi
# controls that can reorder or split what a terminal shows.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_SURROGATE = re.compile("[\udc80-\udcff]")  # non-UTF-8 bytes as os.fsdecode gives them
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _code(m: re.Match[str]) -> str:
    ch = m.group()
    if ch in _NAMED:
        return _NAMED[ch]
    n = ord(ch)
    return f"\\x{n:02x}" if n <= 0xFF else f"\\u{n:04x}"


def _byte(m: re.Match[str]) -> str:
    return f"\\x{ord(m.group()) - 0xDC00:02x}"


def escape(text: str | bytes | os.PathLike[str]) -> str:
    """``text`` with control characters and non-UTF-8 bytes as visible escapes (``\\n``,
    ``\\x1b``, ``\\xff``); printable text, including non-ASCII letters, is unchanged."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "surrogateescape")
    elif not isinstance(text, str):
        text = os.fspath(text)
    return _SURROGATE.sub(_byte, _UNSAFE.sub(_code, text))


def json_text(text: str) -> str:
    """``text`` encodable as UTF-8 JSON: non-UTF-8 bytes of a file name become ``\\xNN``
    (JSON escapes control characters itself)."""
    return _SURROGATE.sub(_byte, text)
