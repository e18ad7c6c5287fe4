"""The recipe rows the train-only choice (:mod:`.recipe`) scores, by list (``--candidates``), and how tables name
them. A row is a dict of :func:`onnxpipe.export.quantize.quantize_graph`'s options (JSON: tuples are lists)."""

from __future__ import annotations

CANDIDATES = [
    {"mode": "static", "alpha": a, "method": m}
    for m in ("minmax", "percentile")
    for a in (0.0, 0.5, 0.7, 0.8, 0.85, 0.9, 0.95)
]
# All-int8 with per-row activation scales (export/rowwise.py): no calibrated range, nothing kept in float.
# GPTQ rounding (export/gptq.py): each weight rounded to keep its product's output on the calibration text.
ROWWISE = [
    {"mode": "rowwise", "alpha": 0.0, "method": "minmax"},
    {"mode": "rowwise", "alpha": 0.0, "method": "minmax", "rounding": "gptq"},
    {"mode": "rowwise", "alpha": 0.5, "method": "minmax"},
]
# Each activation's smoothing strength chosen from these (0: none), as both defaults' int8 recipes did in v5-v7.
SEARCH = [0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9]
# Per-column weight zero points (the embeddings default's best lever on train, README): with both roundings.
ASYMMETRIC = [{**row, "asymmetric": True} for row in ROWWISE[:2]]


# The sentiment default's int8 recipe until issue 24 (build v5): static int8 with 4 nodes kept in float, two of them
# attentions; the row every candidate list starts from, so that each table shows what the new recipe replaced.
STATIC_DEFAULT = {
    "mode": "static",
    "alpha": 0.8,
    "method": "minmax",
    "exclude": [
        "EmbedLayerNormalization_0",
        "/bert/encoder/layer.0/output/dense/MatMul",
        "Attention_1",
        "Attention_2",
    ],
}


def compare_candidates() -> list[dict]:
    """The static default's recipe (4 nodes in float), its settings with every node int8, and rowwise without
    smoothing (weights rounded to nearest, and by GPTQ)."""
    static = {k: v for k, v in STATIC_DEFAULT.items() if k != "exclude"}
    return [STATIC_DEFAULT, static, *ROWWISE[:2], *ASYMMETRIC]


def leftover_candidates() -> list[dict]:
    """The static default's recipe, then each row's rounding leftover in a second int8 product (the embeddings default's
    lever until v8, README): on plain rowwise, on GPTQ with asymmetric weights, and the embeddings default's whole
    recipe then (smoothing searched, centred LayerNorm outputs)."""
    leftover = {"residual": "activations"}
    whole = {**ASYMMETRIC[1], "alpha": SEARCH, "center": True, **leftover}
    return [STATIC_DEFAULT, {**ROWWISE[0], **leftover}, {**ASYMMETRIC[1], **leftover}, whole]


def smoothed_candidates() -> list[dict]:
    """One int8 product a weight (the list that chose the sentiment default, issue 24): the static default's recipe,
    rowwise with GPTQ and asymmetric weights (the ``compare`` choice), then that with a smoothing strength chosen per
    activation (the embeddings default's search, 0 where smoothing does not help), with centred LayerNorm outputs,
    and with GPTQ's moments read sequentially from the partly quantized graph; last, centred with symmetric weights."""
    searched = {**ASYMMETRIC[1], "alpha": SEARCH}
    centred = {**searched, "center": True}
    symmetric = {**centred, "asymmetric": False}  # no zero point per column (MLAS then keeps its GEMV path)
    return [STATIC_DEFAULT, ASYMMETRIC[1], searched, centred, {**centred, "sequential": True}, symmetric]


def table_candidates() -> list[dict]:
    """The sentiment default's recipe as built, and the same with its word embedding table int8 (a scale per row,
    export/word_table.py: the table is 47 MB of the int8 graph's 59 in float)."""
    from . import DEFAULT_INT8 as d

    default = {
        "mode": d.mode,
        "alpha": list(d.alpha) if isinstance(d.alpha, tuple) else d.alpha,
        "method": d.method,
        "rounding": d.rounding,
        "asymmetric": d.asymmetric,
        "center": d.center,
    }
    return [default, {**default, "word_table": True}]


def rotated_candidates() -> list[dict]:
    """The sentiment default's recipe as built, then each activation turned by 128 x 128 Hadamard blocks first
    (export/rotation.py, the embeddings default's lever since v8): on that recipe, and on GPTQ with asymmetric
    weights alone (the embeddings default's recipe)."""
    default = table_candidates()[0]
    return [default, {**default, "rotate": 128}, {**ASYMMETRIC[1], "rotate": 128}]


def fixed_candidates() -> list[dict]:
    """The sentiment default's recipe as built, then with a calibrated (fixed) scale for each activation where it
    errs at most 1.5, 2, 3, 4, 8 times as much as per-row scales on the calibration text, and everywhere."""
    default = table_candidates()[0]
    return [default, *({**default, "fixed": r} for r in (1.5, 2.0, 3.0, 4.0, 8.0, float("inf")))]


LISTS = {
    "compare": compare_candidates,
    "leftover": leftover_candidates,
    "smoothed": smoothed_candidates,
    "table": table_candidates,
    "rotated": rotated_candidates,
    "fixed": fixed_candidates,
}


def describe(row: dict) -> str:
    """A row as the tables name it: mode, smoothing, ranges (static only), nodes kept in float by name."""
    alpha = row["alpha"]
    strength = "chosen per activation" if isinstance(alpha, (list, tuple)) else alpha or 0
    what = f"{row.get('mode', 'static')}, smoothing {strength}"
    what += f", {row['method']}" if row.get("mode", "static") == "static" else ""
    what += f", {row['rounding']} rounding" if row.get("rounding", "nearest") != "nearest" else ""
    what += ", asymmetric weights" if row.get("asymmetric") else ""
    what += ", centred LayerNorm outputs" if row.get("center") else ""
    what += ", each row's leftover in a second product" if row.get("residual") == "activations" else ""
    what += ", GPTQ moments read sequentially" if row.get("sequential") else ""
    what += ", int8 word table" if row.get("word_table") else ""
    what += f", Hadamard-rotated in blocks of {row['rotate']}" if row.get("rotate") else ""
    fixed = row.get("fixed", 0)
    what += ", fixed scales everywhere" if fixed == float("inf") else ""
    what += f", fixed scales where they err at most {fixed:g}x per-row ones" if 0 < fixed < float("inf") else ""
    what += f", GPTQ damping {row['damp']:g}" if row.get("damp", 0.01) != 0.01 else ""
    return what + (f", {len(row['exclude'])} kept in float" if row.get("exclude") else "")
