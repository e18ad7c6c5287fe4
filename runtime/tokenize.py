"""Text → token ids with the artifact's ``tokenizer.json`` (the ``tokenizers`` library, no transformers)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Encoding, Tokenizer

from .errors import InputValueError, OnnxPipeError


# What collate() produces; a graph asking for anything else cannot be fed by this encoder.
ENCODER_OUTPUTS = ("input_ids", "attention_mask", "token_type_ids")

# transformers' words when a batch needs padding and the tokenizer has no pad token.
NO_PAD_TOKEN = (
    "Pipeline with tokenizer without pad_token cannot do batching. You can try to set it with "
    "`pipe.tokenizer.pad_token_id = model.config.eos_token_id`. (onnxpipe: this model runs one input "
    "at a time; pass batch_size=1, its default, or export it with a pad token)"
)

# Tokenizers configured for other truncation settings, the most recently used kept. Each is a full copy
# (~1.5 MB for a 30k vocabulary) and the settings come from callers (a server's clients), so the count is
# bounded: unbounded, 500 requests with distinct max_length values grew a server by 720 MiB.
MAX_VARIANTS = 8


class TextEncoder:
    """Truncates to the model's position limit and pads a batch to its own longest member.

    A tokenizer.json may pin padding to a fixed length (all-MiniLM-L6-v2's pads everything to 128)
    and truncation to a shorter limit than the model's; both are replaced by the artifact's own.
    """

    def __init__(self, path: str | Path, max_length: int, pad_id: int | None, pad_token: str | None):
        try:
            self.tokenizer = Tokenizer.from_file(str(path))
        except Exception as e:  # tokenizers raises a bare Exception on a malformed file
            raise OnnxPipeError(f"{path} is not a valid tokenizer.json ({e}); export the artifact again") from e
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length)
        self._variants: OrderedDict[tuple[int, str, int, str], Tokenizer] = OrderedDict()
        self._lock = threading.Lock()
        self.max_length = max_length
        self.pad_id = pad_id
        self.pad_token = pad_token

    def encode(
        self,
        items: list[Any],
        max_length: int | None = None,
        strategy: str = "longest_first",
        stride: int = 0,
        pretokenized: bool = False,
        add_special_tokens: bool = True,
        direction: str = "right",
    ) -> list[Encoding]:
        """Truncated, unpadded encodings of texts, (text, text_pair) tuples, or (``pretokenized``) lists of
        words: callers sort them by length before padding batches. Text cut by the limit is kept in each
        encoding's ``overflowing`` windows, ``stride`` tokens overlapping, for the tasks that read them.
        Settings other than the defaults use a tokenizer of their own, never changed after it is made (a shared
        tokenizer reconfigured per call would race between threads); the last few made are kept."""
        tokenizer = self._configured(max_length, strategy, stride, direction)
        try:
            if len(items) == 1:  # encode_batch hands even one text to its thread pool: slower at batch 1
                item = items[0]
                if pretokenized:
                    return [tokenizer.encode(item, is_pretokenized=True, add_special_tokens=add_special_tokens)]
                pair = item if isinstance(item, tuple) else (item, None)
                return [tokenizer.encode(*pair, add_special_tokens=add_special_tokens)]
            encodings: list[Encoding] = tokenizer.encode_batch(
                items, is_pretokenized=pretokenized, add_special_tokens=add_special_tokens
            )
            return encodings
        except Exception as e:  # tokenizers raises a bare Exception when truncation cannot be met
            if "Truncation error" not in str(e):
                raise
            length = self.max_length if max_length is None else min(max_length, self.max_length)
            raise InputValueError(
                f"truncation={strategy!r} cannot fit an input into {length} tokens: the text it may not cut is "
                f"longer than that by itself; use truncation='longest_first' (or True), or shorten that text"
            ) from None

    def _configured(
        self, max_length: int | None, strategy: str, stride: int = 0, direction: str = "right"
    ) -> Tokenizer:
        length = self.max_length if max_length is None else min(max_length, self.max_length)
        if length == self.max_length and strategy == "longest_first" and stride == 0 and direction == "right":
            return self.tokenizer
        key = (length, strategy, stride, direction)
        with self._lock:
            variant = self._variants.get(key)
            if variant is None:
                variant = Tokenizer.from_str(self.tokenizer.to_str())
                variant.enable_truncation(length, strategy=strategy, stride=stride, direction=direction)
                self._variants[key] = variant
                if len(self._variants) > MAX_VARIANTS:
                    self._variants.popitem(last=False)
            else:
                self._variants.move_to_end(key)
            return variant

    def collate(self, encodings: list[Encoding]) -> dict[str, np.ndarray]:
        """Pad to the longest encoding and stack into the int64 arrays the graph takes."""
        if len(encodings) > 1:
            longest = max(len(e) for e in encodings)
            if self.pad_id is None and any(len(e) != longest for e in encodings):
                raise InputValueError(NO_PAD_TOKEN)
            for e in encodings:
                e.pad(longest, pad_id=self.pad_id, pad_token=self.pad_token)
        return {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
