"""HTTP against the engine: ``onnxpipe serve`` under ``wrk`` beside the same model called in-process, each in a
process of its own, on the same SST-2 dev sentences, in one run.

    python -m onnxpipe.bench.serve_speed --data ../shared/data/sst2 [--seconds 10] [--clients 1,16,64] \
        [--serve-args '--spin on' --serve-args '--spin off' ...]

For each default (sentiment on ``/predict``, embeddings on ``/embed``):
- in-process: ``pipe(text)`` one sentence at a time (mean latency) and ``pipe(list)`` over all of them
  (sentences/s), the pipeline's defaults, in a fresh process;
- over HTTP: ``wrk`` (Debian's ``wrk``: C, one thread, keep-alive) with C connections, each posting the next
  sentence as soon as its last answer arrives; requests/s, mean, p50 and p99 latency, non-2xx count.
The sides (in-process, then each server configuration) take turns within every pass, so the machine's drift
lands on all of them. The client is C because a Python
load generator costs about as much CPU per request as the server it measures, on the same 2 cores (locust's
figures, ``serve_load``, are a floor for that reason). The issue's bar (README, "Serving at engine speed"):
one caller within 0.5 ms of ``pipe(text)``, 16 and 64 callers at ≥ 0.85x ``pipe(list)``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from .serve_load import start

DEFAULTS = {"sentiment": ("text-classification", "/predict"), "embeddings": ("sentence-embeddings", "/embed")}

# wrk's Lua hooks: cycle through one JSON body per line; print the summary as one JSON line.
WRK_SCRIPT = r"""
local bodies, i = {}, 0
function init(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
end
function request()
  i = i % #bodies + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, bodies[i])
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_s": %.6f, "non2xx": %d, "socket_errors": %d, "mean_ms": %.4f, "p50_ms": %.4f, "p99_ms": %.4f}\n',
    summary.requests, summary.duration / 1e6, e.status, e.connect + e.read + e.write + e.timeout,
    latency.mean / 1e3, latency:percentile(50) / 1e3, latency:percentile(99) / 1e3))
end
"""

# The in-process side, run as ``python -c`` so it owns its process like the server does.
INPROCESS = r"""
import json, statistics, sys, time
from onnxpipe import pipeline
task, path = sys.argv[1], sys.argv[2]
texts = open(path, encoding="utf-8").read().splitlines()
pipe = pipeline(task)
pipe(texts[:64])  # warm: the session's first runs allocate
b1 = []
for t in texts:
    t0 = time.perf_counter(); pipe(t); b1.append(time.perf_counter() - t0)
lists = []
for _ in range(3):
    t0 = time.perf_counter(); pipe(texts); lists.append(time.perf_counter() - t0)
print(json.dumps({"b1_mean_ms": statistics.fmean(b1) * 1e3, "b1_p50_ms": statistics.median(b1) * 1e3,
                  "list_per_s": len(texts) / statistics.median(lists), "variant": pipe.variant}))
"""


def inprocess(task: str, texts: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", INPROCESS, task, str(texts)], check=True, capture_output=True, text=True, timeout=900
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def wrk(url: str, route: str, bodies: Path, script: Path, clients: int, seconds: int) -> dict:
    args = ["wrk", "-t1", f"-c{clients}", f"-d{seconds}s", "--timeout", "30s", "-s", str(script)]
    out = subprocess.run(
        [*args, url + route, "--", str(bodies)],
        check=True,
        capture_output=True,
        text=True,
        timeout=seconds + 120,
    )
    r = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("{")))
    r["per_s"] = r["requests"] / r["duration_s"]
    return r


def compare(
    name: str,
    task: str,
    route: str,
    artifact: Path,
    files: tuple[Path, Path, Path],
    configs: list[str],
    clients: list[int],
    a: argparse.Namespace,
) -> list[dict]:
    """One model: the in-process side and each server configuration in turns, ``a.passes`` times; medians."""
    texts_file, bodies, script = files
    local: list[dict] = []
    floors = ("bare", "http")  # one request at a time: one caller only
    cells = {k: [c for c in clients if k not in floors or c == 1] for k in configs}
    http: dict[tuple[str, int], list[dict]] = {(k, c): [] for k in configs for c in cells[k]}
    for _ in range(a.passes):
        local.append(inprocess(task, texts_file))
        print(json.dumps({"model": name, "in-process": local[-1]}), file=sys.stderr, flush=True)
        for config in configs:  # one server at a time: an idle one would still hold memory and threads
            if config in floors:  # uvicorn and the pipeline inline (bare), or a fixed answer (http): no onnxpipe server
                proc, url = start(artifact, True, None, bare=task, constant=config == "http")
            else:
                proc, url = start(artifact, True, None, extra=tuple(config.split()))
            try:
                for c in cells[config]:
                    # Warmed at the cell's own count: after a larger cell, the first request waits behind that
                    # cell's leftovers (~250 ms), and wrk's coordinated-omission correction turns that one stall
                    # into dozens of synthetic slow samples (a one-caller p99 of ~200 ms from one slow request).
                    wrk(url, route, bodies, script, c, 3)
                    r = wrk(url, route, bodies, script, c, a.seconds)
                    http[config, c].append(r)
                    print(json.dumps({"model": name, "server": config, "clients": c, **r}), file=sys.stderr)
            finally:
                proc.terminate()
                proc.wait(timeout=60)
    b1 = statistics.median(r["b1_mean_ms"] for r in local)
    per_s = statistics.median(r["list_per_s"] for r in local)
    rows = []
    for (config, c), runs in http.items():
        med = {k: statistics.median(r[k] for r in runs) for k in ("per_s", "mean_ms", "p50_ms", "p99_ms")}
        rows.append(
            {
                "model": name,
                "server": config or "defaults",
                "route": route,
                "clients": c,
                "variant": local[0]["variant"],
                "inprocess_b1_mean_ms": b1,
                "inprocess_list_per_s": per_s,
                **med,
                "non2xx": sum(r["non2xx"] + r["socket_errors"] for r in runs),
                "passes_per_s": [round(r["per_s"], 1) for r in runs],
                "passes_mean_ms": [round(r["mean_ms"], 3) for r in runs],
            }
        )
    return rows


def table(rows: list[dict]) -> list[str]:
    """The README's table: one caller as added milliseconds, more callers as a share of ``pipe(list)``."""
    lines = [
        "| model | server | route | callers | in-process | over HTTP | HTTP / in-process | p50 / p99 ms | non-2xx |",
        "|---|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        if r["clients"] == 1:
            local_s = f"{r['inprocess_b1_mean_ms']:.2f} ms (`pipe(text)`)"
            http_s = f"{r['mean_ms']:.2f} ms"
            gap = f"{r['mean_ms'] - r['inprocess_b1_mean_ms']:+.2f} ms"
        else:
            local_s = f"{r['inprocess_list_per_s']:.0f}/s (`pipe(list)`)"
            http_s = f"{r['per_s']:.0f}/s ({', '.join(f'{x:.0f}' for x in r['passes_per_s'])})"
            gap = f"{r['per_s'] / r['inprocess_list_per_s']:.2f}x"
        lines.append(
            f"| {r['model']} ({r['variant']}) | {r['server']} | `{r['route']}` | {r['clients']} | {local_s} | {http_s} | {gap} | "
            f"{r['p50_ms']:.2f} / {r['p99_ms']:.2f} | {r['non2xx']} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    from onnxpipe.default import ensure_default
    from onnxpipe.export.data import load_sst2

    p = argparse.ArgumentParser(prog="python -m onnxpipe.bench.serve_speed", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="folder with SST-2 dev.tsv (and train.tsv)")
    p.add_argument("--rows", type=int, default=800, help="sentences sent, in order (default: 800)")
    p.add_argument(
        "--split",
        choices=("dev", "train"),
        default="dev",
        help="SST-2 split the sentences come from: train to choose a server setting, dev to report (default: dev)",
    )
    p.add_argument("--seconds", type=int, default=10, help="seconds of load per cell (default: 10)")
    p.add_argument("--clients", default="1,16,64", help="connection counts (default: 1,16,64)")
    p.add_argument("--passes", type=int, default=2, help="alternating passes (default: 2)")
    p.add_argument("--models", default=",".join(DEFAULTS), help=f"default: {','.join(DEFAULTS)}")
    p.add_argument(
        "--serve-args",
        action="append",
        help="a server configuration: extra `onnxpipe serve` flags, e.g. '--spin on', or 'bare' (uvicorn calling "
        "the pipeline inline: what HTTP costs here before any onnxpipe server code; one caller only), or 'http' "
        "(the same app answering a fixed answer: HTTP's round trip alone; one caller only) (repeatable: "
        "each is a contender, all measured in turns within every pass; default: the defaults)",
    )
    p.add_argument("--out", type=Path, default=Path("bench-out"))
    a = p.parse_args(argv)
    configs = a.serve_args or [""]
    if shutil.which("wrk") is None:
        p.error("wrk is not installed (Debian: apt-get install wrk)")
    a.out.mkdir(parents=True, exist_ok=True)
    texts = load_sst2(a.data, a.split)[0][: a.rows]
    texts_file, bodies, script = a.out / "speed_texts.txt", a.out / "speed_bodies.jsonl", a.out / "speed.lua"
    texts_file.write_text("\n".join(texts) + "\n", encoding="utf-8")
    bodies.write_text("".join(json.dumps({"inputs": t}) + "\n" for t in texts), encoding="utf-8")
    script.write_text(WRK_SCRIPT, encoding="utf-8")
    clients = [int(c) for c in a.clients.split(",")]
    rows = []
    for name in a.models.split(","):
        task, route = DEFAULTS[name]
        rows += compare(name, task, route, ensure_default(task), (texts_file, bodies, script), configs, clients, a)
    (a.out / "serve_speed.json").write_text(json.dumps(rows, indent=1) + "\n")
    lines = table(rows)
    (a.out / "serve_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
