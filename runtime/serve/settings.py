"""The server's settings: one dataclass, from which ``onnxpipe serve``'s flags are made (stdlib only, so the
CLI builds its parser without the serve extra installed)."""

from __future__ import annotations

import argparse
import os
from dataclasses import MISSING, dataclass, field, fields
from typing import Any


def _setting(
    default: Any, help: str, flag: str | None = None, kind: Any = int, choices: tuple[str, ...] | None = None
) -> Any:
    return field(default=default, metadata={"help": help, "flag": flag, "kind": kind, "choices": choices})


def _whole(value: str, least: int, expected: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {value!r}") from None
    if n < least:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {value!r}")
    return n


def natural(value: str) -> int:
    """A count that may be 0 (a setting's "never")."""
    return _whole(value, 0, "a whole number >= 0")


@dataclass
class Settings:
    max_batch_tokens: int = _setting(16384, "padded tokens (longest × count) per graph run")
    # 16, measured (embeddings default, 64 closed-loop clients, two interleaved passes): a request that arrives
    # while a batch runs waits for all of it, so the cap sets the tail. At 64 requests a batch p99 was 670-690 ms
    # against 490-570 ms one at a time; at 16 it was 500-550 ms, with requests/s still at or above one at a time
    # (153 and 172 vs 152 and 124). 64 gave ~10% more requests/s (168 and 191) for that tail.
    max_batch_requests: int = _setting(16, "requests per batch; more raises requests/s under load and the p99 with it")
    max_wait_ms: float = _setting(
        2.0, "longest wait for more requests while others are arriving; a lone request never waits", kind=float
    )
    max_queue: int = _setting(1024, "waiting requests before 429")
    max_client_batch: int = _setting(256, "inputs per request (and per /v1/explain or /tokenize call)")
    # OpenAI's own limit for one embeddings request, which its clients batch up to; split by the token budget
    # like any request, so a large one costs time, not a larger graph run.
    max_embeddings_inputs: int = _setting(2048, "inputs per /v1/embeddings request (OpenAI's limit)")
    max_body_bytes: int = _setting(2_000_000, "request body size in bytes, counted as read (chunked bodies too)")
    timeout_s: float = _setting(30.0, "seconds before a request gets 504", flag="--timeout", kind=float)
    threads: int | None = _setting(None, "intra-op threads (default: every core this process may use, over --workers)")
    spin: str = _setting(
        "busy",
        "onnxruntime's idle threads spin for work: 'on', 'off', or 'busy' (a spinning session while more requests "
        "wait or a lone caller's requests run inline, a sleeping one otherwise)",
        kind=str,
        choices=("busy", "on", "off"),
    )
    workers: int = _setting(1, "server processes sharing the port, each with its own session and threads")
    # One per thread, chosen on SST-2 train sentences (2-core AVX2, both defaults, `serve_speed --split train`, two
    # passes): two one-core runs side by side answered 353 / 399 requests/s at 16 / 64 callers (sentiment) and
    # 326 / 359 (embeddings), against 300 / 285 and 307 / 296 for one two-core run at a time. Dev reports (README
    # "At engine speed?"). Larger machines are unmeasured.
    streams: int | None = _setting(
        None,
        "graph runs at once in each worker under load, each on an equal share of its threads (default: one per "
        "thread); a batch that finds the others idle and nothing waiting runs on all the threads",
    )
    # 2-core AVX2, `serve_speed --clients 1,16 --serve-args "" --serve-args "--lone-inline 0"`, two passes: one
    # caller 6.00/6.55 ms against 6.42/6.84 (sentiment), 6.76/6.47 against 7.67/7.69 (embeddings); 16 callers
    # level, since only the one request in flight from the only connection active lately runs inline. Inline
    # without its spinning session, or with the pipe's own spinning, gained less (README, "At engine speed?").
    lone_inline: int = _setting(
        128,
        kind=natural,
        help="a lone request of at most this many padded tokens runs on the event loop, with no thread hand-off, while one "
        "connection alone has been active and nothing else runs (0: never; the event loop waits for that run)",
    )
    api_key: str | None = _setting(
        None,
        "require Authorization: Bearer KEY on every route but /health (default: $ONNXPIPE_API_KEY, if set)",
        kind=str,
    )

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """One flag per setting, named, typed and documented by the field."""
        for f in fields(cls):
            meta = f.metadata
            default = None if f.default is MISSING else f.default
            shown = "" if default is None else f" (default: {default})"
            kind = {int: positive, float: non_negative}.get(meta["kind"], meta["kind"])  # or the setting's own check
            parser.add_argument(
                meta["flag"] or "--" + f.name.replace("_", "-"),
                dest=f.name,
                type=kind,
                default=default,
                help=meta["help"] + shown,
                choices=meta["choices"],
            )

    @classmethod
    def from_arguments(cls, args: argparse.Namespace) -> Settings:
        values = {f.name: getattr(args, f.name) for f in fields(cls)}
        values["api_key"] = values["api_key"] or os.environ.get("ONNXPIPE_API_KEY") or None
        return cls(**values)

    def session_threads(self) -> int:
        """Intra-op threads per worker: as set, else this process's cores shared out among the workers."""
        from ..session import default_threads

        return self.threads or max(1, default_threads() // self.workers)

    def session_streams(self, threads: int) -> int:
        """Graph runs at once per worker: as set (at most one per thread), else one per thread."""
        return min(self.streams or threads, threads)

    def public(self) -> dict[str, Any]:
        """What ``/info`` and the start-up line show: every setting but the key."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "api_key"}


def positive(value: str) -> int:
    return _whole(value, 1, "a positive integer")


def non_negative(value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value!r}") from None
    if not x >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value!r}")
    return x
