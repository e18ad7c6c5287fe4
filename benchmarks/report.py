"""The run's outputs: results.json (every raw figure), results.md (table, targets), three PNG plots.

Longer than 300 lines because the table, the targets and the three plots read the same rows and labels.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .harness import REFERENCE, best_onnxpipe, quoted_batch
from .stats import paired_ratios, ratio

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


def _x(r: dict | None) -> str:
    return "–" if r is None else f"{r['median']:.1f}× [{r['min']:.1f}–{r['max']:.1f}]"


def _sizes(result: dict[str, Any]) -> list[str]:
    return sorted(result["contenders"][REFERENCE].get("throughput", {}), key=int)


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
        out.append(
            {
                "name": name,
                "status": "ok",
                "p50": r["latency"]["sentence"]["p50_ms"],
                "speedup_range": paired_ratios(
                    ref.get("sentence_p50_by_block_ms", []), r.get("sentence_p50_by_block_ms", [])
                ),
                "throughput_range": paired_ratios(
                    ref.get("throughput_passes", {}).get(big, []),
                    r.get("throughput_passes", {}).get(big, []),
                    higher_is_better=True,
                ),
                "batch": (r.get("batch_flips"), r.get("batch_max_gap")),
                "mix": (r["latency"]["mix"]["p50_ms"], r["latency"]["mix"]["p90_ms"], r["latency"]["mix"]["p99_ms"]),
                "speedup": ratio(ref_p50, r["latency"]["sentence"]["p50_ms"]),
                "throughput": thr,
                "throughput_x": ratio(thr, ref["throughput"][big]),
                "cold": cold.get("cold_start_s"),
                "import": cold.get("import_s"),
                "rss": cold.get("peak_rss_mib"),
                "size": r["size_bytes"] / MB if r.get("size_bytes") else None,
                "footprint": r["footprint_bytes"] / MB,
                "accuracy": r.get("accuracy"),
                "agreement": r.get("agreement"),
                "gap": r.get("max_prob_gap"),
            }
        )
    return out


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    big = _batch(result)
    isolation = "a process of its own" if result.get("isolation") == "process" else "one shared process"
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores ({', '.join(m['isa']) or 'no AVX2'}"
        f"{', ' + m['clock'] if m.get('clock') else ''}); {result['threads']} threads for "
        f"every contender, each in {isolation}, taking turns; {result['n_texts']} SST-2 dev sentences.",
        *(
            [f"The runtime runs {result['variant_choice']['variant']} here: {result['variant_choice']['reason']}."]
            if result.get("variant_choice")
            else []
        ),
        "Ratios are medians over the interleaved blocks (latency) or passes (throughput), with their range in "
        "brackets: that range is this run's noise, and a difference inside it is not one. Throughput is each "
        "contender's median pass (every pass is in the JSON).",
        "",
        f"| contender | p50 seed sentence (ms) | ×PyTorch [range] | mix p50 / p90 / p99 (ms) | dev sent/s @{big} "
        "| ×PyTorch [range] | cold start [import] (s) | peak RSS (MiB) | model (MB) | install (MB) | dev accuracy "
        f"| agreement | max prob gap | batch 1 vs {', '.join(b for b in _sizes(result) if b != '1')}: flips / gap |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in table_rows(result):
        if r["status"] != "ok":
            lines.append(f"| {r['name']} | {r['status']}: {r['reason']} |" + " |" * 13)
            continue
        cold = "–" if r["cold"] is None else f"{r['cold']:.2f} [{r['import']:.2f}]"
        flips, gap = r["batch"]
        lines.append(
            f"| {r['name']} | {r['p50']:.2f} | {_x(r['speedup_range'])} | {' / '.join(f'{x:.2f}' for x in r['mix'])} "
            f"| {_f(r['throughput'], '.0f')} | {_x(r['throughput_range'])} "
            f"| {cold} | {_f(r['rss'], '.0f')} | {_f(r['size'], '.1f')} | {r['footprint']:.0f} "
            f"| {_f(r['accuracy'] and 100 * r['accuracy'], '.1f')}{'%' if r['accuracy'] else ''} "
            f"| {_f(r['agreement'] and 100 * r['agreement'], '.2f')}{'%' if r['agreement'] else ''} "
            f"| {_f(r['gap'], '.1e')} | {'–' if flips is None else f'{flips} / {gap:.1e}'} |"
        )
    for group, title in (("onnxpipe", "onnxpipe's graphs"), ("peer", "How the peers ran")):
        # onnxpipe: each variant's file and node count; peers: the settings each ran at its best (bench.peers)
        notes = [(n, r["note"]) for n, r in result["contenders"].items() if r["group"] == group and r.get("note")]
        lines += (["", f"{title}:", ""] + [f"- {name}: {note}" for name, note in notes]) if notes else []
    lines += ["", "Targets, best onnxpipe variant by batch-1 p50:", ""]
    lines += [f"- {'✓' if ok else '✗'} {text}" for ok, text in targets(result)]
    return "\n".join(lines)


def targets(result: dict[str, Any]) -> list[tuple[bool, str]]:
    """The issues' targets (4: speed; 9: int8 as right as fp32, batch-invariant) as measured figures;
    a missing contender skips its lines."""
    rows = result["contenders"]
    best = best_onnxpipe(rows)
    if best is None:
        return []
    b, ref = rows[best], rows[REFERENCE]
    big = _batch(result)
    p50 = lambda r: r["latency"]["sentence"]["p50_ms"]
    thr = lambda r: r["throughput"][big]
    out = []

    def check(name, op, value, goal, text):
        if value is not None:
            out.append((op(value, goal), f"{text}: {value:.2f} (target {goal:g}) [{best} vs {name}]"))

    check(REFERENCE, float.__ge__, ratio(p50(ref), p50(b)), 8.0, "batch-1 p50 speed-up vs PyTorch fp32")
    check(REFERENCE, float.__ge__, ratio(thr(b), thr(ref)), 5.0, f"dev throughput @{big} vs PyTorch fp32")
    if "cold" in b and "cold" in ref:
        check(
            REFERENCE,
            float.__ge__,
            ratio(ref["cold"]["cold_start_s"], b["cold"]["cold_start_s"]),
            15.0,
            "cold start speed-up vs PyTorch fp32",
        )
        check(
            REFERENCE,
            float.__le__,
            ratio(b["cold"]["peak_rss_mib"], ref["cold"]["peak_rss_mib"]),
            0.25,
            "peak RSS share of PyTorch's",
        )
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
                check(
                    name,
                    float.__ge__,
                    100 * (b["agreement"] - r["agreement"]),
                    0.0,
                    "agreement with PyTorch minus the peer's, points",
                )
    # Issue 9: the default variant as right as fp32, batch-invariant, and fast.
    if b.get("agreement") is not None:
        out.append(
            (
                b["agreement"] >= 0.995,
                f"{best} agreement with PyTorch fp32 {100 * b['agreement']:.2f}% (target ≥ 99.5%)",
            )
        )
        drop = 100 * (ref["accuracy"] - b["accuracy"])
        out.append(
            (
                abs(drop) <= 0.2,
                f"{best} accuracy {100 * b['accuracy']:.2f}% vs PyTorch "
                f"{100 * ref['accuracy']:.2f}%: {-drop:+.2f} points (target within 0.2)",
            )
        )
    if b.get("batch_flips") is not None:
        out.append(
            (
                b["batch_flips"] == 0 and b["batch_max_gap"] <= 1e-4,
                f"{best} alone vs batched: {b['batch_flips']} label flips, largest score gap "
                f"{b['batch_max_gap']:.1e} (target 0 and ≤ 1e-4)",
            )
        )
    check(REFERENCE, float.__ge__, ratio(p50(ref), p50(b)), 10.0, "batch-1 p50 vs PyTorch, each alone (issue 9)")
    fp32_row = rows.get("onnxpipe fp32")
    if fp32_row and fp32_row["status"] == "ok" and best != "onnxpipe fp32":
        check("onnxpipe fp32", float.__ge__, ratio(thr(b), thr(fp32_row)), 1.8, "throughput vs onnxpipe fp32")
    fp32 = rows.get("onnxpipe fp32")
    if fp32 and fp32["status"] == "ok":
        out.append(
            (
                fp32["agreement"] == 1.0 and fp32["max_prob_gap"] <= 1e-5,
                f"onnxpipe fp32 agreement with PyTorch {100 * fp32['agreement']:.1f}% (target 100%), largest "
                f"probability gap {fp32['max_prob_gap']:.1e} (target ≤ 1e-5)",
            )
        )
    bare = rows.get("bare ORT session (best variant)")
    if bare and bare["status"] == "ok":
        over = ratio(p50(b), p50(bare))  # None when either has no figure
        check(
            "bare session",
            float.__le__,
            None if over is None else over - 1,
            0.10,
            "runtime overhead over a bare session.run at batch 1",
        )
    return out


def plots(result: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    rows = {n: r for n, r in result["contenders"].items() if r["status"] == "ok"}
    colors = {
        "pytorch": "tab:red",
        "optimum": "tab:orange",
        "onnxpipe": "tab:green",
        "bare": "tab:olive",
        "peer": "tab:blue",
    }
    paths = {}

    names = list(rows)
    lengths = list(next(iter(rows.values()))["latency_s"])
    fig, axes = plt.subplots(1, len(lengths), figsize=(4 * len(lengths), 0.45 * len(rows) + 1.6), sharey=True)
    for ax, length in zip(axes, lengths):
        data = [[1e3 * x for x in rows[n]["latency_s"][length]] for n in names]
        box = ax.boxplot(
            data,
            orientation="horizontal",
            patch_artist=True,
            showfliers=False,
            whis=(1, 99),
            medianprops={"color": "black"},
        )
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
            ax.plot(
                sizes,
                [r["throughput"][str(s)] for s in sizes],
                marker="o",
                label=n,
                color=colors[r["group"]],
                alpha=0.9,
                linestyle="-" if r["group"] != "peer" else "--",
            )
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size")
    ax.set_ylabel("SST-2 dev sentences / s")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    paths["throughput_plot"] = _save(fig, out_dir / "throughput.png")

    fig, ax = plt.subplots(figsize=(8, 5))
    big = _batch(result)
    points = [(n, r["throughput"][big], 100 * r["accuracy"]) for n, r in rows.items() if r.get("accuracy") is not None]
    for n, x, y in points:
        ax.scatter(x, y, color=colors[rows[n]["group"]], s=40)
    for (n, x, y), dy in zip(points, _label_offsets([(x, y) for _, x, y in points], [n for n, _, _ in points])):
        ax.annotate(
            n,
            (x, y),
            fontsize=7,
            textcoords="offset points",
            xytext=(5 + (12 if dy else 0), dy),
            va="center",
            arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "gray"} if dy else None,
        )
    ax.set_xlabel(f"SST-2 dev sentences / s (batch {_batch(result)})")
    ax.set_ylabel("SST-2 dev accuracy, %")
    ax.grid(alpha=0.3)
    paths["accuracy_plot"] = _save(fig, out_dir / "accuracy_vs_speed.png")
    return paths


def _label_offsets(points: list[tuple[float, float]], names: list[str], step: float = 9.0) -> list[float]:
    """Vertical label offsets (points) so that labels whose text would overprint stack instead:
    matplotlib has no label placement of its own, and adjustText would be one more dependency."""
    if not points:
        return []
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    span_x, span_y = (max(xs) - min(xs)) or 1.0, (max(ys) - min(ys)) or 1.0
    char = 0.0125 * span_x  # a 7-pt character's width on an 8-inch plot, in data units (measured by eye)
    extent = [(x, x + char * (len(n) + 2)) for (x, _), n in zip(points, names)]
    offsets: list[float] = []
    for i, (_, y) in enumerate(points):
        near = [
            offsets[j]
            for j in range(i)
            if abs(points[j][1] - y) / span_y < 0.06 and extent[j][0] < extent[i][1] and extent[i][0] < extent[j][1]
        ]
        offset = 0.0
        while any(abs(offset - o) < step for o in near):
            offset -= step
        offsets.append(offset)
    return offsets


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
