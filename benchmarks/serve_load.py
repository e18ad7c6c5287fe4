"""Load on a real ``onnxpipe serve`` process: requests/s and p50 / p99 at several client counts, with
micro-batching on and off (``--max-batch-requests 1``), for the sentiment and the embeddings default.

    python -m onnxpipe.bench.serve_load --data ../shared/data/sst2 [--requests 600] [--out bench-out]

A bounded asyncio client (httpx): each of C clients sends its next request when its last is answered
(closed loop, like users waiting for answers), over the SST-2 dev sentences; every answer is checked
for status 200. The server runs in a process of its own; the client shares the machine, so on 2 cores
the figures are a floor for what a separate client machine would see.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROUTES = {"sentiment": ("text-classification", "/v1/pipeline", lambda t: {"inputs": t}),
          "embeddings": ("sentence-embeddings", "/embed", lambda t: {"inputs": t})}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(artifact: Path, batching: bool, threads: int | None) -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    args = [sys.executable, "-m", "onnxpipe.cli", "serve", "-m", str(artifact), "--port", str(port)]
    args += [] if batching else ["--max-batch-requests", "1"]
    args += ["--threads", str(threads)] if threads else []
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(proc.stderr.read())
        time.sleep(0.1)
    raise RuntimeError("server did not start")


async def load(url: str, route: str, body, texts: list[str], clients: int, requests: int) -> dict:
    import httpx

    latencies: list[float] = []
    failures = 0
    counter = iter(range(requests))

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal failures
        for i in counter:
            t = time.perf_counter()
            r = await http.post(url + route, json=body(texts[i % len(texts)]))
            latencies.append(time.perf_counter() - t)
            failures += r.status_code != 200

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        await http.post(url + route, json=body(texts[0]))  # warm
        t0 = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        seconds = time.perf_counter() - t0
    ms = np.array(latencies) * 1e3
    return {"clients": clients, "requests": requests, "failures": failures, "rps": requests / seconds,
            "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def main(argv: list[str] | None = None) -> int:
    from onnxpipe.default import ensure_default
    from onnxpipe.export.data import load_sst2

    p = argparse.ArgumentParser(prog="python -m onnxpipe.bench.serve_load", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="folder with SST-2 dev.tsv")
    p.add_argument("--requests", type=int, default=600, help="requests per cell (default: 600)")
    p.add_argument("--clients", default="1,16,64", help="client counts (default: 1,16,64)")
    p.add_argument("--threads", type=int, help="server intra-op threads (default: all cores)")
    p.add_argument("--out", type=Path, default=Path("bench-out"))
    a = p.parse_args(argv)
    texts = load_sst2(a.data, "dev")[0]
    rows = []
    for name, (task, route, body) in ROUTES.items():
        artifact = ensure_default(task)
        for batching in (True, False):
            proc, url = start(artifact, batching, a.threads)
            try:
                for c in (int(x) for x in a.clients.split(",")):
                    r = asyncio.run(load(url, route, body, texts, c, a.requests))
                    rows.append({"model": name, "route": route, "batching": batching, **r})
                    print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
            finally:
                proc.terminate()
                proc.wait(timeout=60)
    lines = ["| model | route | micro-batching | clients | requests/s | p50 ms | p99 ms | failures |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | `{r['route']}` | {'on' if r['batching'] else 'off'} | {r['clients']} | "
              f"{r['rps']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['failures']} |" for r in rows]
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "serve_load.json").write_text(json.dumps(rows, indent=1) + "\n")
    (a.out / "serve_load.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
