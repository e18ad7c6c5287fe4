"""Load on a real ``onnxpipe serve`` process: requests/s and p50 / p99 at several client counts, with
micro-batching on and off (``--max-batch-requests 1``), for the sentiment and the embeddings default, and
Infinity serving the same embeddings folder as the peer; servers' turns interleaved, two passes.

    python -m onnxpipe.bench.serve_load --data ../shared/data/sst2 [--seconds 20] [--out bench-out]

The load is locust, headless (``locustfile.py``): C users, each sending its next request when its last is
answered (closed loop, like users waiting for answers), over the SST-2 dev sentences, for a fixed time;
any status but 200 counts as a failure. locust's gevent client costs a fraction of a millisecond of CPU
per request (httpx's asyncio client measured 5.8 ms here, and became the bottleneck at 174 requests/s).
The server runs in a process of its own; the client shares the machine, so on 2 cores the figures are a
floor for what a separate client machine would see.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
from pathlib import Path


ROUTES = {"sentiment": ("text-classification", "/v1/pipeline"), "embeddings": ("sentence-embeddings", "/embed")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(
    artifact: Path,
    batching: bool,
    threads: int | None,
    infinity: str | None = None,
    extra: tuple[str, ...] = (),
    bare: str | None = None,
    constant: bool = False,
) -> tuple[subprocess.Popen, str]:
    """onnxpipe serve (or, given its command, Infinity on the same artifact folder; or, given a task, the bare
    ASGI app of :mod:`.bare_asgi`, ``constant``: answering one fixed answer) on a free loopback port."""
    import os

    import httpx

    port = free_port()
    env = None
    if bare:
        env = {**os.environ, "ONNXPIPE_BARE_TASK": bare, "ONNXPIPE_BARE_MODEL": str(artifact)}
        env.update({"ONNXPIPE_BARE_CONSTANT": "1"} if constant else {})
        args = [sys.executable, "-m", "uvicorn", "onnxpipe.bench.bare_asgi:app", "--port", str(port)]
        args += ["--loop", "uvloop", "--http", "httptools", "--log-level", "warning"]
    elif infinity:  # Infinity's optimum engine picks the folder's model_quantized.onnx: the same int8 graph
        args = [
            infinity,
            "v2",
            "--model-id",
            str(artifact),
            "--engine",
            "optimum",
            "--device",
            "cpu",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
    else:
        args = [sys.executable, "-m", "onnxpipe.cli", "serve", "-m", str(artifact), "--port", str(port)]
        args += [] if batching else ["--max-batch-requests", "1"]
        args += ["--threads", str(threads)] if threads else []
        args += list(extra)
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(proc.stderr.read() if proc.stderr else f"exit status {proc.returncode}")
        time.sleep(0.1)
    raise RuntimeError("server did not start")


def load(
    url: str,
    route: str,
    texts_file: Path,
    clients: int,
    seconds: int,
    out: Path,
    field: str = "inputs",
    extra: dict | None = None,
) -> dict:
    """One locust run; its CSV's aggregated row → requests/s, p50, p99, failures."""
    import csv
    import os

    prefix = out / f"locust-{route.strip('/').replace('/', '_')}-{clients}"
    env = {
        **os.environ,
        "ONNXPIPE_ROUTE": route,
        "ONNXPIPE_TEXTS": str(texts_file),
        "ONNXPIPE_FIELD": field,
        "ONNXPIPE_EXTRA": json.dumps(extra or {}),
    }
    subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(Path(__file__).with_name("locustfile.py")),
            "--headless",
            "-u",
            str(clients),
            "-r",
            str(clients),
            "-t",
            f"{seconds}s",
            "--host",
            url,
            "--csv",
            str(prefix),
            "--only-summary",
            "--loglevel",
            "WARNING",
        ],
        env=env,
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=seconds + 120,
    )
    with open(f"{prefix}_stats.csv", encoding="utf-8") as f:
        row = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")
    return {
        "clients": clients,
        "requests": int(row["Request Count"]),
        "failures": int(row["Failure Count"]),
        "rps": float(row["Requests/s"]),
        "p50_ms": float(row["50%"]),
        "p99_ms": float(row["99%"]),
    }


def table(rows: list[dict]) -> list[str]:
    """The README's table, by model, client count and batching."""
    rows.sort(key=lambda r: (r["model"], r["clients"], not r["batching"]))
    lines = [
        "| model | route | micro-batching | clients | requests/s (passes) | p50 ms | p99 ms | failures |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['model']} | `{r['route']}` | {'on' if r['batching'] else 'off'} | {r['clients']} | "
        f"{r['rps']:.0f} ({', '.join(f'{x:.0f}' for x in r['rps_passes'])}) | {r['p50_ms']:.0f} | "
        f"{r['p99_ms']:.0f} | {r['failures']} |"
        for r in rows
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    """Over 60 lines: its flags, then one loop over the models and the servers' turns, read top to bottom."""
    from onnxpipe.default import ensure_default
    from onnxpipe.export.data import load_sst2

    p = argparse.ArgumentParser(prog="python -m onnxpipe.bench.serve_load", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="folder with SST-2 dev.tsv")
    p.add_argument("--seconds", type=int, default=20, help="seconds of load per cell (default: 20)")
    p.add_argument("--clients", default="1,16,64", help="client counts (default: 1,16,64)")
    p.add_argument("--passes", type=int, default=2, help="interleaved passes over every cell (default: 2)")
    p.add_argument("--threads", type=int, help="server intra-op threads (default: all cores)")
    p.add_argument("--models", default=",".join(ROUTES), help=f"which defaults to serve (default: {','.join(ROUTES)})")
    p.add_argument("--out", type=Path, default=Path("bench-out"))
    p.add_argument(
        "--infinity",
        metavar="COMMAND",
        help="Infinity's infinity_emb command (pip install 'infinity-emb[server,optimum]', best in a venv "
        "of its own): serves the embeddings default as the peer",
    )
    a = p.parse_args(argv)
    texts = load_sst2(a.data, "dev")[0]
    a.out.mkdir(parents=True, exist_ok=True)
    texts_file = a.out / "serve_load_texts.txt"
    texts_file.write_text("\n".join(texts) + "\n", encoding="utf-8")
    rows = []
    clients = [int(x) for x in a.clients.split(",")]
    for name in a.models.split(","):
        if name not in ROUTES:
            p.error(f"--models: {name!r} is not one of {', '.join(ROUTES)}")
        task, route = ROUTES[name]
        artifact = ensure_default(task)
        # Every contender's server up at once (idle, they cost nothing), then their turns interleaved cell by
        # cell and pass by pass: the machine's drift over the run lands on all of them alike.
        servers = {"on": start(artifact, True, a.threads), "off": start(artifact, False, a.threads)}
        if name == "embeddings" and a.infinity:
            servers["Infinity"] = start(artifact, True, a.threads, a.infinity)
        try:
            cells: dict[tuple[str, int], list[dict]] = {}
            for _ in range(a.passes):
                for c in clients:
                    for who, (_, url) in servers.items():
                        if who == "Infinity":
                            r = load(
                                url, "/embeddings", texts_file, c, a.seconds, a.out, "input", {"model": str(artifact)}
                            )
                        else:
                            r = load(url, route, texts_file, c, a.seconds, a.out)
                        cells.setdefault((who, c), []).append(r)
                        print(json.dumps({"model": name, "server": who, **r}), file=sys.stderr, flush=True)
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait(timeout=60)
        for (who, _clients), runs in cells.items():
            best = max(runs, key=lambda r: r["rps"])  # the fastest pass is quoted, every pass kept
            rows.append(
                {
                    "model": name if who != "Infinity" else f"{name} (Infinity)",
                    "route": "/embeddings" if who == "Infinity" else route,
                    "batching": who != "off",
                    **best,
                    "rps_passes": [round(r["rps"], 1) for r in runs],
                }
            )
    lines = table(rows)
    (a.out / "serve_load.json").write_text(json.dumps(rows, indent=1) + "\n")
    (a.out / "serve_load.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
