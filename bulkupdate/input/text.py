"""Whether an input is text in its encoding: the checks on its first line (a binary file, UTF-16,
a UTF-8 byte-order mark under another encoding, JSONL read as CSV) and the words for a line that
does not decode, each naming the fix.

Pure: bytes in, words out. No opening files, no framing.
"""

from __future__ import annotations

import codecs
import json
import re

from bulkupdate.errors import InputError

UTF8_BOM = b"\xef\xbb\xbf"
_WIDE_BOMS = (b"\xff\xfe", b"\xfe\xff")  # UTF-16 and UTF-32, either byte order
# Control bytes no CSV or JSONL text holds (tab, line ends, and the shifts and escape of the
# ISO-2022 encodings aside): a binary file, or a UTF-16 one without its byte-order mark.
_CONTROL_BYTE = re.compile(rb"[\x00-\x08\x10-\x1a\x1c-\x1f]")


def is_utf8(encoding: str) -> bool:
    return codecs.lookup(encoding).name in ("utf-8", "utf-8-sig")


def undecodable(exc: UnicodeDecodeError, line_bytes: bytes, encoding: str) -> tuple[str, int]:
    """Why a line is not text in `encoding` and what to try, and the 1-based column where."""
    column = len(line_bytes[: exc.start].decode(encoding, errors="replace")) + 1
    byte = line_bytes[exc.start : exc.start + 1].hex()
    if is_utf8(encoding):
        hint = "if the file is not UTF-8, pass its encoding, e.g. --encoding cp1252"
        return f"invalid UTF-8: {exc.reason} (byte 0x{byte}); {hint}", column
    return f"invalid {encoding}: {exc.reason} (byte 0x{byte}); check --encoding", column


def text_problem(first_line: bytes, encoding: str) -> str | None:
    """What an input's first line says is wrong with the whole input (not text, or not in
    `encoding`), in words; None when nothing is."""
    if first_line.startswith(_WIDE_BOMS):
        return (
            "is UTF-16 or UTF-32 (it starts with their byte-order mark), which cannot be read "
            "line by line: save it as UTF-8 (Excel: CSV UTF-8)"
        )
    if first_line.startswith(UTF8_BOM) and not is_utf8(encoding):
        return (
            f"starts with a UTF-8 byte-order mark, so it is UTF-8, not {encoding}: "
            "leave out --encoding"
        )
    control = _CONTROL_BYTE.search(first_line)
    if control is not None:
        return (
            f"is not a text file (its first line holds the control byte 0x{control.group().hex()})"
            ": give a CSV or JSONL export (a spreadsheet saved as CSV, not the workbook)"
        )
    return None


def _is_json_object(line: bytes, encoding: str) -> bool:
    if not line.lstrip().startswith(b"{"):
        return False  # the common case, without parsing
    try:
        return isinstance(json.loads(line.decode(encoding, errors="replace")), dict)
    except (ValueError, RecursionError):
        return False


def check_csv_text(path: str, first: list[bytes], encoding: str, *, parsed: bool) -> None:
    """Raise a plain InputError when the first line (`first`: it, or nothing) shows the input is
    no CSV text: binary, in another encoding, JSONL, or with classic Mac line ends, which csv's
    own words ("new-line character seen in unquoted field") do not say. `parsed`: whether
    csv.reader read the line."""
    line = first[0] if first else b""
    problem = text_problem(line, encoding)
    if problem is not None:
        raise InputError(path, problem)
    if _is_json_object(line.removeprefix(UTF8_BOM), encoding):
        message = "holds a JSON object, not a CSV header: for JSONL input pass --format jsonl"
        raise InputError(path, message, line=1)
    if not parsed and b"\r" in line.rstrip(b"\r\n"):
        message = "lines end with a carriage return alone (classic Mac): make them \\n or \\r\\n"
        raise InputError(path, message)
