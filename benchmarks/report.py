"""The run's outputs: results.json (every raw figure), results.md (table, targets), three PNG plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .harness import REFERENCE, best_onnxpipe, quoted_batch
from .stats import ratio

MB = 1e6


def write_all(result: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "results.json", "markdown": out_dir / "results.md"}
    paths["json"].write_text(json.dumps(result, indent=1) + "\n")
    paths["markdown"].write_text(markdown(result) + "\n")
    paths.update(plots(result, out_dir))
    return paths


def _batch(result: dict[str, Any]) -> str:
    return quoted_batch(result["contenders"][REFERENCE]["throughput"])


def _f(x: float | None, fmt: str) -> str:
    return "–" if x is None else format(x, fmt)


def table_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    rows = result["contenders"]
    ref = rows[REFERENCE]
    ref_p50 = ref["latency"]["sentence"]["p50_ms"]
    big = _batch(result)
    out = []
    for name, r in rows.items():
        if r["status"] != "ok":
            out.append({"name": name, "status": r["status"], "reason": r["reason"]})
            continue
        thr = r.get("throughput", {}).get(big)
        cold = r.get("cold", {})
        out.append({
            "name": name, "status": "ok",
            "p50": r["latency"]["sentence"]["p50_ms"],
            "mix": (r["latency"]["mix"]["p50_ms"], r["latency"]["mix"]["p90_ms"], r["latency"]["mix"]["p99_ms"]),
            "speedup": ratio(ref_p50, r["latency"]["sentence"]["p50_ms"]),
            "throughput": thr, "throughput_x": ratio(thr, ref["throughput"][big]),
            "cold": cold.get("cold_start_s"), "import": cold.get("import_s"), "rss": cold.get("peak_rss_mib"),
            "size": r["size_bytes"] / MB if r.get("size_bytes") else None,
            "footprint": r["footprint_bytes"] / MB,
            "accuracy": r.get("accuracy"), "agreement": r.get("agreement"), "gap": r.get("max_prob_gap"),
        })
    return out


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    big = _batch(result)
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores ({', '.join(m['isa'])}); {result['threads']} threads for "
        f"every contender; {result['n_texts']} SST-2 dev sentences.",
        "",
        f"| contender | p50 seed sentence (ms) | ×PyTorch | mix p50 / p90 / p99 (ms) | dev sent/s @{big} | ×PyTorch "
        "| cold start [import] (s) | peak RSS (MiB) | model (MB) | install (MB) | dev accuracy | agreement | max prob gap |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in table_rows(result):
        if r["status"] != "ok":
            lines.append(f"| {r['name']} | {r['status']}: {r['reason']} |" + " |" * 12)
            continue
        cold = "–" if r["cold"] is None else f"{r['cold']:.2f} [{r['import']:.2f}]"
        lines.append(
            f"| {r['name']} | {r['p50']:.2f} | {_f(r['speedup'], '.1f')}× | {' / '.join(f'{x:.2f}' for x in r['mix'])} "
            f"| {_f(r['throughput'], '.0f')} | {_f(r['throughput_x'], '.1f')}{'×' if r['throughput_x'] else ''} "
            f"| {cold} | {_f(r['rss'], '.0f')} | {_f(r['size'], '.1f')} | {r['footprint']:.0f} "
            f"| {_f(r['accuracy'] and 100 * r['accuracy'], '.1f')}{'%' if r['accuracy'] else ''} "
            f"| {_f(r['agreement'] and 100 * r['agreement'], '.1f')}{'%' if r['agreement'] else ''} "
            f"| {_f(r['gap'], '.1e')} |")
    lines += ["", "Targets (issue 4), best onnxpipe variant by batch-1 p50:", ""]
    lines += [f"- {'✓' if ok else '✗'} {text}" for ok, text in targets(result)]
    return "\n".join(lines)


def targets(result: dict[str, Any]) -> list[tuple[bool, str]]:
    """The issue's speed targets as measured ratios; a missing contender skips its lines."""
    rows = result["contenders"]
    best = best_onnxpipe(rows)
    if best is None:
        return []
    b, ref = rows[best], rows[REFERENCE]
    big = _batch(result)
    p50 = lambda r: r["latency"]["sentence"]["p50_ms"]  # noqa: E731
    thr = lambda r: r["throughput"][big]  # noqa: E731
    out = []

    def check(name, op, value, goal, text):
        if value is not None:
            out.append((op(value, goal), f"{text}: {value:.2f} (target {goal:g}) [{best} vs {name}]"))

    check(REFERENCE, float.__ge__, ratio(p50(ref), p50(b)), 8.0, "batch-1 p50 speed-up vs PyTorch fp32")
    check(REFERENCE, float.__ge__, ratio(thr(b), thr(ref)), 5.0, f"dev throughput @{big} vs PyTorch fp32")
    if "cold" in b and "cold" in ref:
        check(REFERENCE, float.__ge__, ratio(ref["cold"]["cold_start_s"], b["cold"]["cold_start_s"]), 15.0,
              "cold start speed-up vs PyTorch fp32")
        check(REFERENCE, float.__le__, ratio(b["cold"]["peak_rss_mib"], ref["cold"]["peak_rss_mib"]), 0.25,
              "peak RSS share of PyTorch's")
    for name, r in rows.items():
        if r["status"] != "ok" or r["group"] not in ("optimum", "peer"):
            continue
        if name == "optimum ORT (default export)":
            check(name, float.__ge__, ratio(p50(r), p50(b)), 2.5, "batch-1 speed-up vs optimum's default export")
        elif name.startswith("optimum ORT"):
            check(name, float.__ge__, ratio(p50(r), p50(b)), 1.0, "batch-1 speed-up vs optimum, same ONNX file")
            check(name, float.__ge__, ratio(thr(b), thr(r)), 1.5, "throughput vs optimum, same ONNX file")
        else:
            check(name, float.__ge__, ratio(p50(r), p50(b)), 1.0, "batch-1 speed-up vs peer")
            check(name, float.__ge__, ratio(thr(b), thr(r)), 1.0, "throughput vs peer")
            if r.get("agreement") is not None:
                check(name, float.__ge__, 100 * (b["agreement"] - r["agreement"]), 0.0,
                      "agreement with PyTorch minus the peer's, points")
    fp32 = rows.get("onnxpipe fp32")
    if fp32 and fp32["status"] == "ok":
        out.append((fp32["agreement"] == 1.0 and fp32["max_prob_gap"] <= 1e-5,
                    f"onnxpipe fp32 agreement with PyTorch {100 * fp32['agreement']:.1f}% (target 100%), largest "
                    f"probability gap {fp32['max_prob_gap']:.1e} (target ≤ 1e-5)"))
    bare = rows.get("bare ORT session (best variant)")
    if bare and bare["status"] == "ok":
        check("bare session", float.__le__, ratio(p50(b), p50(bare)) - 1, 0.10,
              "runtime overhead over a bare session.run at batch 1")
    return out


def plots(result: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    rows = {n: r for n, r in result["contenders"].items() if r["status"] == "ok"}
    colors = {"pytorch": "tab:red", "optimum": "tab:orange", "onnxpipe": "tab:green", "bare": "tab:olive",
              "peer": "tab:blue"}
    paths = {}

    names = list(rows)
    lengths = list(next(iter(rows.values()))["latency_s"])
    fig, axes = plt.subplots(1, len(lengths), figsize=(4 * len(lengths), 0.45 * len(rows) + 1.6), sharey=True)
    for ax, length in zip(axes, lengths):
        data = [[1e3 * x for x in rows[n]["latency_s"][length]] for n in names]
        box = ax.boxplot(data, orientation="horizontal", patch_artist=True, showfliers=False, whis=(1, 99),
                         medianprops={"color": "black"})
        for patch, n in zip(box["boxes"], names):
            patch.set_facecolor(colors[rows[n]["group"]])
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:g}"[0] in "25" else ""))
        ax.tick_params(axis="x", which="minor", labelsize=7)
        ax.set_title(f"{length.replace('_', ' ')}", fontsize=10)
        ax.set_xlabel("ms (log)")
        ax.grid(axis="x", which="both", alpha=0.3)
    axes[0].set_yticks(range(1, len(names) + 1), names)
    axes[0].invert_yaxis()
    fig.suptitle("batch-1 latency by input length (box p25–p75, line p50, whiskers p1–p99)", fontsize=11)
    paths["latency_plot"] = _save(fig, out_dir / "latency.png")

    fig, ax = plt.subplots(figsize=(8, 5))
    for n, r in rows.items():
        if "throughput" in r:
            sizes = sorted(map(int, r["throughput"]))
            ax.plot(sizes, [r["throughput"][str(s)] for s in sizes], marker="o", label=n,
                    color=colors[r["group"]], alpha=0.9, linestyle="-" if r["group"] != "peer" else "--")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size")
    ax.set_ylabel("SST-2 dev sentences / s")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    paths["throughput_plot"] = _save(fig, out_dir / "throughput.png")

    fig, ax = plt.subplots(figsize=(8, 5))
    for n, r in rows.items():
        if r.get("accuracy") is not None:
            big = _batch(result)
            ax.scatter(r["throughput"][big], 100 * r["accuracy"], color=colors[r["group"]], s=40)
            ax.annotate(n, (r["throughput"][big], 100 * r["accuracy"]), fontsize=7, textcoords="offset points",
                        xytext=(4, 3 - 10 * (list(rows).index(n) % 2)))  # alternate, so neighbours don't overlap
    ax.set_xlabel(f"SST-2 dev sentences / s (batch {_batch(result)})")
    ax.set_ylabel("SST-2 dev accuracy, %")
    ax.grid(alpha=0.3)
    paths["accuracy_plot"] = _save(fig, out_dir / "accuracy_vs_speed.png")
    return paths


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
