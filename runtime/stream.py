"""``onnxpipe run``'s input side: numbered lines from stdin (or arguments), answered as they arrive.

A reader thread queues stdin lines as they come; the main loop blocks for one line, then takes every
line already waiting (up to the batch size), so a trickle (``tail -f``) is answered line by line and
a flood is still batched. Lines are decoded here, strictly, one by one: a line that is not UTF-8
becomes an error record for that line instead of ending the stream. With ``--jsonl`` each line is
JSON: a string, an object with a ``text`` field and optionally ``text_pair``, or any other object, handed
to the pipeline as it is (``{"question", "context"}`` for question answering).
"""

from __future__ import annotations

import json
import os
import queue
import threading
from dataclasses import dataclass
from typing import Any, BinaryIO, cast
from collections.abc import Iterable, Iterator

_EOF = object()


def not_utf8(raw: bytes, e: UnicodeDecodeError) -> str:
    return f"not UTF-8 text (byte 0x{raw[e.start]:02x} at byte {e.start})"


def not_json(e: json.JSONDecodeError) -> str:
    return f"not valid JSON ({e.msg} at column {e.colno})"


@dataclass(frozen=True)
class Line:
    number: int  # 1-based, counting blank lines too, so it matches the input file
    text: str | None  # None when the line could not be decoded
    error: str | None = None
    pair: str | None = None  # --jsonl {"text", "text_pair"}
    obj: Any = None  # --jsonl inputs other than text: {"question", "context"}, a list of words, as they are

    @property
    def input(self) -> Any:
        if self.obj is not None:
            return self.obj
        return self.text if self.pair is None else {"text": self.text, "text_pair": self.pair}


def decode(number: int, raw: bytes, jsonl: bool = False) -> Line:
    """A line of text, or with ``jsonl`` a JSON string or an object with a ``text`` field."""
    raw = raw.rstrip(b"\n").rstrip(b"\r")  # LF or CRLF
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return Line(number, None, f"line {number} is {not_utf8(raw, e)}")
    if not jsonl or not text.strip():
        return Line(number, text)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        return Line(number, None, f"line {number} is {not_json(e)}")
    pair = None
    if isinstance(value, list) or (isinstance(value, dict) and "text" not in value):
        return Line(number, text, obj=value)  # the task checks it as the Python call would
    if isinstance(value, dict):
        fields: dict[str, Any] = value
        value, pair = fields.get("text"), fields.get("text_pair")
    if not isinstance(value, str) or not isinstance(pair, (str, type(None))):
        return Line(
            number,
            None,
            f'line {number}: give a JSON string or an object with a "text" string '
            '(and optionally a "text_pair" string), or the object the task takes',
        )
    return Line(number, value, pair=pair)


def from_arguments(args: Iterable[str]) -> list[Line]:
    # argv keeps undecodable bytes as lone surrogates (surrogateescape); fsencode gives the bytes back.
    return [decode(i, os.fsencode(a)) for i, a in enumerate(args, 1)]


def batches(stream: BinaryIO, size: int, jsonl: bool = False) -> Iterator[list[Line]]:
    """Lists of non-blank lines: the first that arrives plus whatever else is already waiting."""
    lines: queue.Queue[tuple[int, bytes] | object] = queue.Queue(
        maxsize=16 * size
    )  # bounded: a fast producer cannot fill memory

    def read() -> None:
        try:
            for number, raw in enumerate(stream, 1):
                lines.put((number, raw))
        finally:
            lines.put(_EOF)

    threading.Thread(target=read, name="onnxpipe-stdin", daemon=True).start()
    done = False
    while not done:
        batch = []
        item = lines.get()
        while True:
            if item is _EOF:
                done = True
                break
            number, raw = cast("tuple[int, bytes]", item)  # not _EOF: one of read()'s (number, raw) pairs
            line = decode(number, raw, jsonl=jsonl)
            if line.text is None or line.text.strip():
                batch.append(line)
            if len(batch) >= size:
                break
            try:
                item = lines.get_nowait()
            except queue.Empty:
                break
        if batch:
            yield batch
