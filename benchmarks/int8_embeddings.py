"""Int8 recipes for the embeddings default (all-MiniLM-L6-v2), judged by retrieval against sentence-transformers.

    nice -n 10 python -m onnxpipe.bench.int8_embeddings --data ../shared/data/sst2 [--recipes a,b] [--speed]

Sets (issue 24, item 2): SST-2 train, de-duplicated and shuffled with a fixed seed, gives a corpus of 10,000
sentences, 1,000 *other* train sentences as the selection queries, and the calibration texts (disjoint from
both); dev's 872 sentences are the reported queries against the same corpus. For each recipe the corpus and
queries are embedded by the int8 graph and scored against sentence-transformers fp32 (embedded once, cached):
top-10 overlap (per query |top10 ∩ reference top10| / 10, averaged) and kNN accuracy (k = 10, majority vote
of the neighbours' labels). Recipes are chosen on the train rows; dev only reports. ``--speed``: batch-1 p50
and batch-32 throughput of every graph against the fused fp32 graph, interleaved in one process (rounds of
each graph in turn, medians), 1 onnxruntime thread by default. ``--sensitivity``: the overlap lost when one
quantized activation (with every MatMul reading it) alone is int8, the rest float. ``--noise-budget``: the
overlap that random error of a known size costs (each reference vector moved in a random direction by a
Gaussian of that norm, corpus and queries alike), so a recipe's mean (1 - cosine) reads as an overlap to expect.
``--leftover-fraction 0,0.3,0.5``: each recipe with a rows' leftover product is scored again with that product
scaled by each fraction f, leaving (1 - f)^2 of the activations' rounding error power: what a one-product recipe
would score with that much less activation error (f = 0 is the recipe without its leftover).

Longer than 300 lines: the sets, the reference, the recipes, the scores and the timing of one
experiment, kept in one file so that the table in its note is one command.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

SEED = 24
CORPUS, QUERIES = 10_000, 1_000
CACHE = Path("/tmp/onnxpipe-int8-embeddings")
SEARCH = (0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9)


def sets(data: Path, calibration: int) -> dict[str, tuple[list[str], np.ndarray]]:
    from onnxpipe.export.data import load_sst2

    texts, labels = load_sst2(data, "train")
    seen: dict[str, int] = {}
    for t, y in zip(texts, labels):
        seen.setdefault(t.strip(), y)
    unique = [t for t in seen if len(t.split()) >= 3]  # phrases of one or two words are not retrieval queries
    order = np.random.default_rng(SEED).permutation(len(unique))
    pick = [unique[i] for i in order]
    dev, dev_labels = load_sst2(data, "dev")

    def labelled(xs: list[str]) -> tuple[list[str], np.ndarray]:
        return xs, np.array([seen[x] for x in xs])

    return {
        "corpus": labelled(pick[:CORPUS]),
        "train": labelled(pick[CORPUS : CORPUS + QUERIES]),
        "calibration": labelled(pick[CORPUS + QUERIES : CORPUS + QUERIES + calibration]),
        "dev": (dev, np.array(dev_labels)),
    }


def reference(base: Path, named: dict) -> dict[str, np.ndarray]:
    """sentence-transformers fp32 embeddings of corpus, train and dev queries (cached under /tmp)."""
    CACHE.mkdir(exist_ok=True)
    path = CACHE / "reference.npz"
    if path.exists():
        cached = dict(np.load(path))
        if all(k in cached and len(cached[k]) == len(named[k][0]) for k in ("corpus", "train", "dev")):
            return cached
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(1)
    model = SentenceTransformer(str(base), device="cpu")
    out = {k: model.encode(named[k][0], batch_size=64, convert_to_numpy=True) for k in ("corpus", "train", "dev")}
    np.savez(path, **out)
    return out


class Embedder:
    """Tokenize once (the artifact's tokenizer.json, cut at max_seq_length), then mean-pool + normalise a graph's
    ``last_hidden_state`` as the runtime does."""

    def __init__(self, artifact: Path, max_length: int = 256):
        from tokenizers import Tokenizer

        self.tok = Tokenizer.from_file(str(artifact / "tokenizer.json"))
        self.tok.enable_truncation(max_length)
        self.tok.no_padding()

    def feeds(self, texts: list[str], batch: int = 64) -> tuple[list[dict], np.ndarray]:
        enc = self.tok.encode_batch(texts)
        order = np.argsort([len(e.ids) for e in enc], kind="stable")
        out = []
        for i in range(0, len(order), batch):
            part = [enc[j] for j in order[i : i + batch]]
            width = max(len(e.ids) for e in part)
            ids = np.zeros((len(part), width), np.int64)
            mask = np.zeros_like(ids)
            for r, e in enumerate(part):
                ids[r, : len(e.ids)] = e.ids
                mask[r, : len(e.ids)] = 1
            out.append({"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})
        return out, order


def session(model_bytes: bytes, threads: int = 1):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])


def embed(sess, feeds: list[dict], order: np.ndarray) -> np.ndarray:
    names = [i.name for i in sess.get_inputs()]
    parts = []
    for f in feeds:
        hidden = sess.run(None, {n: f[n] for n in names})[0]
        m = f["attention_mask"][..., None].astype(np.float32)
        v = (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        parts.append(v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12))
    out = np.empty((len(order), parts[0].shape[1]), np.float32)
    out[order] = np.concatenate(parts)
    return out


def top10(queries: np.ndarray, corpus: np.ndarray) -> np.ndarray:
    return np.argsort(-(queries @ corpus.T), axis=1, kind="stable")[:, :10]


def scores(q: np.ndarray, c: np.ndarray, ref: np.ndarray, labels: np.ndarray, corpus_labels: np.ndarray) -> dict:
    """Top-10 overlap with the reference neighbours ``ref`` and kNN accuracy (k = 10, majority, ties -> 1)."""
    mine = top10(q, c)
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(mine, ref)])
    votes = corpus_labels[mine].mean(1)
    return {"overlap": float(overlap), "knn": float(((votes >= 0.5) == labels).mean())}


def evaluate(sess, enc: dict, truth: dict, which=("train", "dev")) -> dict:
    c = embed(sess, *enc["corpus"])
    out = {}
    for k in which:
        q = embed(sess, *enc[k])
        out[k] = scores(q, c, truth[f"{k}_top10"], truth[f"{k}_labels"], truth["corpus_labels"])
        out[k]["min_cos"] = float((q * truth[k]).sum(1).min())
    return out


BEST = {"alpha": SEARCH, "rounding": "gptq", "center": True}  # search-gptq-centre: the best before these
CLIPS = tuple(np.round(np.arange(0.80, 1.001, 0.02), 2))

# The four products whose int8 alone cost most (plain rowwise; mean 1 - cosine over 600 train queries, an earlier
# stop's sensitivity run): Q/K/V of layers 3-5 and layer 4's FFN-up.
TOP4 = frozenset({*(f"Attention_{i}/qkv/MatMul" for i in (3, 4, 5)), "/encoder/layer.4/intermediate/dense/MatMul"})

# Recipes tried (name -> quantize_rowwise options); every one is all-int8 (no weight product left in float).
RECIPES: dict[str, dict] = {
    "rowwise": {},
    "smooth0.5": {"alpha": 0.5},
    "smooth0.7": {"alpha": 0.7},
    "smooth0.8": {"alpha": 0.8},
    "smooth0.7-gptq": {"alpha": 0.7, "rounding": "gptq"},
    "smooth0.7-gptq-bc": {"alpha": 0.7, "rounding": "gptq", "bias_correction": True},
    "gptq": {"rounding": "gptq"},
    # each activation its own alpha (0: none), chosen on the calibration rows by the simulated product's error
    "search": {"alpha": SEARCH},
    "search-gptq": {"alpha": SEARCH, "rounding": "gptq"},
    # LayerNorm outputs quantized as (x - beta) / s by a second LayerNorm (replaces the smoothing Mul)
    "search-gptq-centre": {"alpha": SEARCH, "rounding": "gptq", "center": True},
    # issue 24's untried levers, each on top of the best recipe above (BEST)
    "seq": {**BEST, "sequential": True},  # GPTQ fed the partly quantized graph's own inputs, activation by activation
    "best-noorder": {**BEST, "act_order": False},  # GPTQ rounding the inputs in stored order
    "best-damp0.1": {**BEST, "damp": 0.1},
    "best-clip": {**BEST, "clips": CLIPS},  # per-output-channel scale clipped to the fraction erring least
    "best-bc": {**BEST, "bias_correction": True},  # mean error back into the bias, GPTQ on the covariance
    "seq-target": {**BEST, "sequential": "target"},  # and each layer aims at the float graph's product (GPTAQ)
    "best-asym": {**BEST, "asymmetric": True},  # uint8 weights, a zero point per output channel
    "seq-asym": {**BEST, "sequential": True, "asymmetric": True},
    "seq-target-asym": {**BEST, "sequential": "target", "asymmetric": True},
    "seq-asym-bc": {**BEST, "sequential": True, "asymmetric": True, "bias_correction": True},
    "seq-clip": {**BEST, "sequential": True, "clips": CLIPS},
    "seq-clip-bc": {**BEST, "sequential": True, "clips": CLIPS, "bias_correction": True},
    # a second int8 product per weight MatMul: of the weights' rounding leftover, each row's, or both (no float)
    "best-residual": {**BEST, "residual": "weights"},
    "rowwise-residual": {"residual": "weights"},
    "best-ares": {**BEST, "residual": "activations"},
    "best-both": {**BEST, "residual": "both"},
    "rowwise-ares": {"residual": "activations"},
    "best-asym-ares": {**BEST, "asymmetric": True, "residual": "activations"},
    "best-ares-qkv": {
        **BEST,
        "residual": "activations",
        "residual_nodes": frozenset(f"Attention_{i}/qkv/MatMul" for i in range(6)),
    },
    "best-ares-top4": {**BEST, "residual": "activations", "residual_nodes": TOP4},
    "best-asym-ares-top4": {**BEST, "asymmetric": True, "residual": "activations", "residual_nodes": TOP4},
    # each activation centred and turned by 128 x 128 Hadamard blocks before its per-row int8 (export/rotation.py):
    # one product a weight; with and without the per-activation smoothing, and blocks of 64 (cheaper, less spread)
    "best-asym-rot128": {**BEST, "asymmetric": True, "rotate": 128},
    "gptq-asym-rot128": {"rounding": "gptq", "asymmetric": True, "rotate": 128},
    "gptq-asym-rot64": {"rounding": "gptq", "asymmetric": True, "rotate": 64},
    # GPTQ's damping (a fraction of the Hessian's mean diagonal): the bundled text's ~1,400 tokens estimate a
    # 1,536-wide Hessian poorly, and more damping trusts it less
    **{
        f"gptq-asym-rot128-damp{d:g}": {"rounding": "gptq", "asymmetric": True, "rotate": 128, "damp": d}
        for d in (0.1, 0.3, 1.0)
    },
    "asym-rot128": {"asymmetric": True, "rotate": 128},  # weights rounded to nearest: no Hessian to estimate
    # the GELU outputs quantized per row in groups of their channels, widest first (export/gelu_groups.py), instead
    # of rotated; every other activation rotated as in the default
    **{
        f"gptq-asym-rot128-damp0.1-gelu{len(sizes) + 1}": {
            "rounding": "gptq",
            "asymmetric": True,
            "rotate": 128,
            "damp": 0.1,
            "gelu_groups": sizes,
        }
        for sizes in ((16, 240), (8, 32, 128, 512), (4, 12, 48, 192, 768))
    },
    # the default's recipe with a calibrated scale where it errs at most r times the per-row one (one quantize node)
    **{
        f"gptq-asym-rot128-damp0.1-fixed{r:g}": {
            "rounding": "gptq",
            "asymmetric": True,
            "rotate": 128,
            "damp": 0.1,
            "fixed": r,
        }
        for r in (1.5, 2.0, 4.0)
    },
    "search-gptq-float-l4-up": {
        "alpha": SEARCH,
        "rounding": "gptq",
        "exclude": {"/encoder/layer.4/intermediate/dense/MatMul"},
    },
}


def build(name: str, fp32: Path, calib: list[dict]) -> tuple[bytes, dict]:
    import onnx

    from onnxpipe.export.rowwise import quantize_rowwise

    from onnxpipe.export.sequential import sequential_moments

    from onnxpipe.export.rowwise import weight_type_for

    model = onnx.load(str(fp32))
    options = dict(RECIPES[name])
    sequential = options.pop("sequential", False)
    # This CPU's weight layout, as export builds it: the same integers on every x86 CPU (so the same scores), but
    # uint8 weights on a VNNI CPU would time MLAS's slow u8 x u8 kernel instead of its VNNI one.
    weights = weight_type_for(_isa())
    if sequential:
        options["moments"] = sequential_moments(model, calib, target=sequential == "target", weights=weights, **options)
    done = quantize_rowwise(model, calib if options else None, weights=weights, **options)
    return model.SerializeToString(), done


def timing(graphs: dict[str, bytes], enc: dict, rounds: int, threads: int) -> dict:
    """Batch-1 p50 (seed-length dev sentence) and batch-32 throughput over dev, graphs interleaved per round."""
    sessions = {k: session(v, threads) for k, v in graphs.items()}
    feeds32, _ = enc["dev32"]
    one = enc["dev1"]
    b1: dict[str, list[float]] = {k: [] for k in graphs}
    b32: dict[str, list[float]] = {k: [] for k in graphs}
    for s in sessions.values():
        names = [i.name for i in s.get_inputs()]
        for f in feeds32[:2] + [one] * 5:
            s.run(None, {n: f[n] for n in names})
    for _ in range(rounds):
        for k, s in sessions.items():
            names = [i.name for i in s.get_inputs()]
            lat = []
            for _ in range(30):
                t = time.perf_counter()
                s.run(None, {n: one[n] for n in names})
                lat.append(time.perf_counter() - t)
            b1[k].append(float(np.median(lat)))
            t = time.perf_counter()
            for f in feeds32:
                s.run(None, {n: f[n] for n in names})
            b32[k].append(time.perf_counter() - t)
    base = "fp32"
    return {
        k: {
            "b1_ms": 1000 * float(np.median(b1[k])),
            "b1_ratio": float(np.median(b1[base]) / np.median(b1[k])),
            "b32_ratio": float(np.median(b32[base]) / np.median(b32[k])),
        }
        for k in graphs
    }


def noise_budget(ref: dict[str, np.ndarray], truth: dict, named: dict) -> None:
    """Top-10 overlap against mean (1 - cosine) when every vector carries isotropic random error."""
    rng = np.random.default_rng(SEED)

    def noisy(x: np.ndarray, size: float) -> np.ndarray:
        y = x + rng.normal(size=x.shape).astype(np.float32) * size / np.sqrt(x.shape[1])
        return y / np.linalg.norm(y, axis=1, keepdims=True)

    print("| error norm | mean (1 - cosine) | train top-10 overlap | dev top-10 overlap |\n|--:|--:|--:|--:|")
    for size in (0.005, 0.01, 0.02, 0.03, 0.05, 0.08):
        corpus, cells = noisy(ref["corpus"], size), []
        for k in ("train", "dev"):
            q = noisy(ref[k], size)
            cells.append(scores(q, corpus, truth[f"{k}_top10"], named[k][1], named["corpus"][1])["overlap"])
        gap = float(1 - (q * ref["dev"]).sum(1).mean())
        print(f"| {size} | {gap:.6f} | {cells[0]:.4f} | {cells[1]:.4f} |")


def main(argv: list[str] | None = None) -> None:
    import onnx

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--artifact", type=Path, help="the embeddings default's artifact folder (default: built/cached)")
    p.add_argument("--recipes", default="rowwise")
    p.add_argument("--calibration", type=int, default=256)
    p.add_argument(
        "--bundled-calibration",
        action="store_true",
        help="calibrate on the bundled text, one text a feed, as the export path builds the default (not SST-2 train)",
    )
    p.add_argument("--sensitivity", action="store_true")
    p.add_argument("--speed", action="store_true")
    p.add_argument("--noise-budget", action="store_true", help="only the overlap that random error of known size costs")
    p.add_argument(
        "--leftover-fraction",
        type=fractions,
        default=[],
        help="comma-separated fractions of the rows' leftover product, each between 0 and 1",
    )
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)

    artifact = args.artifact or default_artifact()
    fp32 = artifact / "model_optimized.onnx"
    named = sets(args.data, args.calibration)
    manifest = json.loads((artifact / "onnxpipe.json").read_text())
    ref = reference(Path(manifest["source"]["base"]), named)
    emb = Embedder(artifact)
    enc = {k: emb.feeds(named[k][0]) for k in ("corpus", "train", "dev")}
    truth: dict = {"corpus_labels": named["corpus"][1]}
    for k in ("train", "dev"):
        truth[f"{k}_top10"] = top10(ref[k], ref["corpus"])
        truth[f"{k}_labels"] = named[k][1]
        truth[k] = ref[k]
        truth[f"{k}_knn_reference"] = scores(
            ref[k], ref["corpus"], truth[f"{k}_top10"], named[k][1], named["corpus"][1]
        )
    if args.noise_budget:
        return noise_budget(ref, truth, named)
    if args.bundled_calibration:
        from onnxpipe.export.quantize import read_texts

        calib = emb.feeds(read_texts(None)[0], batch=1)[0]
    else:
        calib = emb.feeds(named["calibration"][0], batch=32)[0]
    print(
        f"sentence-transformers fp32 kNN: train {truth['train_knn_reference']['knn']:.4f}, dev {truth['dev_knn_reference']['knn']:.4f}"
    )
    rows: dict[str, dict] = {}
    graphs = {"fp32": onnx.load(str(fp32)).SerializeToString()}
    rows["fp32"] = {**evaluate(session(graphs["fp32"]), enc, truth), "nodes": len(onnx.load(str(fp32)).graph.node)}
    print("fp32", json.dumps(rows["fp32"]))
    for name in args.recipes.split(","):
        t = time.time()
        if name.startswith("graph="):  # an int8 graph built elsewhere (the export path), judged the same way
            graphs[name] = onnx.load(name.removeprefix("graph=")).SerializeToString()  # with its weights file
        else:
            graphs[name], _ = build(name, fp32, calib)
        m = onnx.ModelProto.FromString(graphs[name])
        rows[name] = {**evaluate(session(graphs[name]), enc, truth), "nodes": len(m.graph.node), "float": floats(m)}
        print(name, json.dumps(rows[name]), f"({time.time() - t:.0f} s)", flush=True)
        for f in args.leftover_fraction:
            scaled = scale_leftover(graphs[name], f)
            rows[f"{name}@{f:g}"] = {**evaluate(session(scaled), enc, truth), "nodes": len(m.graph.node), "float": 0}
            print(f"{name}@{f:g}", json.dumps(rows[f"{name}@{f:g}"]), flush=True)
    if args.speed:
        dev1 = emb.feeds(["a gripping , moving story that will stay with you for a long time ."], batch=1)[0][0]
        enc_t = {"dev32": emb.feeds(named["dev"][0], batch=32), "dev1": dev1}
        for k, v in timing(graphs, enc_t, args.rounds, args.threads).items():
            rows[k]["speed"] = v
            print(k, f"speed ({_isa()})", json.dumps(v))
    print(markdown(rows, truth))
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))


def _isa() -> str:
    """This CPU's ISA, read when called (the tests give it another)."""
    from onnxpipe.export.quantize import detect_isa

    return detect_isa()


def fractions(text: str) -> list[float]:
    """``--leftover-fraction``'s value: comma-separated numbers in [0, 1], or argparse's one-line error."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None
    if not values or any(not 0 <= v <= 1 for v in values):
        raise argparse.ArgumentTypeError(f"fractions are between 0 and 1, not {text!r}")
    return values


def markdown(rows: dict, truth: dict) -> str:
    """The recipe table: train (chooses) and dev (reports), nodes, float products, speed ratios on this CPU (its ISA
    named: int8's speed and its rounding differ by ISA)."""
    ref = {k: 100 * truth[f"{k}_knn_reference"]["knn"] for k in ("train", "dev")}
    out = [
        f"| recipe | nodes | float products | train top-10 overlap | train kNN (s-t {ref['train']:.2f}%) "
        f"| dev top-10 overlap | dev kNN (s-t {ref['dev']:.2f}%) | speed vs fp32 b1 / b32 ({_isa()}) |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for name, r in rows.items():
        speed = r.get("speed")
        ratio = f"{speed['b1_ratio']:.2f}x / {speed['b32_ratio']:.2f}x" if speed else "–"
        out.append(
            f"| {name} | {r['nodes']} | {r.get('float', 'all')} | {r['train']['overlap']:.4f} | "
            f"{100 * r['train']['knn']:.2f}% | {r['dev']['overlap']:.4f} | {100 * r['dev']['knn']:.2f}% | {ratio} |"
        )
    return "\n".join(out)


def scale_leftover(model_bytes: bytes, fraction: float) -> bytes:
    """The graph with each rows'-leftover product (weight scale ``*_ascale``) multiplied by ``fraction``."""
    import onnx
    from onnx import numpy_helper

    model = onnx.ModelProto.FromString(model_bytes)
    scaled = [i for i in model.graph.initializer if i.name.endswith("_ascale")]
    if not scaled:
        raise SystemExit("--leftover-fraction needs a recipe with the rows' leftover (residual='activations')")
    for init in scaled:
        init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.float32(fraction), init.name))
    return model.SerializeToString()


def floats(model) -> int:
    """Weight products left in float (MatMul/Gemm/Attention with a constant weight; a rotation is not one)."""
    from onnxpipe.graph_nodes import ROTATION_PREFIX

    inits = {i.name for i in model.graph.initializer}
    return sum(
        n.op_type in ("MatMul", "Gemm", "Attention")
        and len(n.input) > 1
        and n.input[1] in inits
        and not n.input[1].startswith(ROTATION_PREFIX)
        for n in model.graph.node
    )


def default_artifact() -> Path:
    """The embeddings default's artifact as the runtime resolves it (built first if the cache has none), not
    whichever older build's folder sorts last."""
    from onnxpipe.default import ensure_default

    return ensure_default("sentence-embeddings")


if __name__ == "__main__":
    main()
