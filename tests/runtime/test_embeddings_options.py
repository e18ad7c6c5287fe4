"""sentence-embeddings' output precision, Matryoshka truncate_dim and long documents by windows, against
sentence-transformers (quantize_embeddings, SentenceTransformer(truncate_dim=...), per-window encode) on a tiny
sentence-transformers model: BERT, mean pooling, Normalize, max_seq_length 16, Matryoshka sizes 16 and 8."""

from __future__ import annotations

import numpy as np
import pytest

import onnxpipe
from onnxpipe.tasks.embedding_options import PRECISIONS

TEXTS = [
    "We are very happy to show you the Transformers library.",
    "Terrible.",
    "très émouvant, à voir absolument",
    "the food was good but the service was bad",
]
LIMIT = 16


@pytest.fixture(scope="module")
def pipe(st_matryoshka):
    return onnxpipe.pipeline("sentence-embeddings", model=st_matryoshka[1])


def calibration_texts() -> list[str]:
    from onnxpipe.export.quantize import read_texts

    return read_texts(None)[0]


def test_precision_is_quantize_embeddings(pipe, st_matryoshka):
    """Each precision: the same bits as quantize_embeddings given our float vectors and the manifest's ranges,
    which are sentence-transformers' own calibration ranges (min and max over the bundled corpus)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.util.quantization import quantize_embeddings

    st = SentenceTransformer(str(st_matryoshka[0]), device="cpu")
    floats = pipe(TEXTS)
    ranges = np.asarray(pipe.config.int8_ranges["unit:32"], dtype=np.float32)
    calibrated = st.encode(calibration_texts())
    assert np.allclose(ranges, np.vstack((calibrated.min(axis=0), calibrated.max(axis=0))), atol=1e-5)
    for precision in PRECISIONS:
        ours = pipe(TEXTS, precision=precision)
        theirs = quantize_embeddings(floats, precision, ranges=ranges if precision.endswith("int8") else None)
        assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs), precision
        alone = np.stack([pipe(t, precision=precision) for t in TEXTS])
        assert np.array_equal(alone, ours), precision  # no range comes from the batch
    for precision in ("binary", "ubinary"):  # no ranges at all: sentence-transformers' encode itself
        assert np.array_equal(pipe(TEXTS, precision=precision), st.encode(TEXTS, precision=precision))
    given = [[-0.5] * 32, [0.5] * 32]  # the caller's ranges (float64, as JSON gives them)
    assert np.array_equal(
        pipe(TEXTS, precision="uint8", ranges=given), quantize_embeddings(floats, "uint8", ranges=np.array(given))
    )
    assert pipe([], precision="ubinary").shape == (0, 4)
    with pytest.raises(ValueError, match="precision must be one of float32, int8"):
        pipe(TEXTS, precision="int4")
    with pytest.raises(ValueError, match="ranges are for precision 'int8' or 'uint8'"):
        pipe(TEXTS, precision="binary", ranges=given)
    with pytest.raises(ValueError, match=r"ranges has shape \(2, 32\); the vectors need \(2, 8\)"):
        pipe(TEXTS, precision="int8", ranges=given, truncate_dim=8)
    with pytest.raises(ValueError, match="has none for unit 4-dimensional vectors .*--matryoshka-dims"):
        pipe(TEXTS, precision="int8", truncate_dim=4, normalize=True)


def test_truncate_dim_is_sentence_transformers(pipe, st_matryoshka):
    """truncate_dim cuts after the model's Normalize (the first k values of the unit vector, as
    SentenceTransformer(truncate_dim=k) gives them); normalize=True normalises the cut vector again
    (normalize_embeddings=True)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.util.quantization import quantize_embeddings

    for k in (8, 5):
        st = SentenceTransformer(str(st_matryoshka[0]), device="cpu", truncate_dim=k)
        reference = st.encode(TEXTS)
        made = onnxpipe.pipeline("sentence-embeddings", model=st_matryoshka[1], truncate_dim=k)
        assert made(TEXTS).shape == (len(TEXTS), k)
        assert np.max(np.abs(made(TEXTS) - reference)) < 1e-5
        assert np.max(np.abs(pipe(TEXTS, truncate_dim=k) - reference)) < 1e-5
        unit = st.encode(TEXTS, normalize_embeddings=True)
        ours = pipe(TEXTS, truncate_dim=k, normalize=True)
        assert np.max(np.abs(ours - unit)) < 1e-5 and np.allclose(np.linalg.norm(ours, axis=1), 1)
    assert pipe.config.matryoshka_dims == [16, 8]
    # int8 at a Matryoshka size, normalised again: that size's own calibration ranges
    cut = SentenceTransformer(str(st_matryoshka[0]), device="cpu", truncate_dim=8)
    calibrated = cut.encode(calibration_texts(), normalize_embeddings=True)
    ranges = np.asarray(pipe.config.int8_ranges["unit:8"], dtype=np.float32)
    assert np.allclose(ranges, np.vstack((calibrated.min(axis=0), calibrated.max(axis=0))), atol=1e-5)
    floats = pipe(TEXTS, truncate_dim=8, normalize=True)
    assert np.array_equal(
        pipe(TEXTS, truncate_dim=8, normalize=True, precision="int8"),
        quantize_embeddings(floats, "int8", ranges=ranges),
    )
    with pytest.raises(ValueError, match="truncate_dim must be between 1 and 32, got 33"):
        pipe(TEXTS, truncate_dim=33)
    with pytest.raises(ValueError, match="truncate_dim must be a positive int or None, got '8'"):
        onnxpipe.pipeline("sentence-embeddings", model=st_matryoshka[1], truncate_dim="8")


def test_long_documents_by_windows(pipe, st_matryoshka):
    """long="chunk": a text under the limit gives exactly today's vector; one of ~3x the limit is the mean of
    its windows' unnormalised vectors (each embedded alone by sentence-transformers), weighted by their
    non-special tokens, then normalised once."""
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

    short = TEXTS[0]
    assert np.array_equal(pipe(short, long="chunk"), pipe(short))
    words = " ".join(TEXTS[3].split() + TEXTS[0].lower().rstrip(".").split() + ["i", "love", "it"] * 4)
    text = words + " " + words
    uncut = Tokenizer.from_str(pipe.encoder.tokenizer.to_str())
    uncut.no_truncation()
    assert 3 * LIMIT <= len(uncut.encode(text)) <= 4 * LIMIT
    plan = pipe.plan(text, long="chunk", stride=4)
    windows = [f.encoding for f in plan.features]
    assert len(windows) >= 3 and all(len(w) <= LIMIT for w in windows)
    spans = [[o for o, m in zip(w.offsets, w.special_tokens_mask) if not m] for w in windows]
    pieces = [text[s[0][0] : s[-1][1]] for s in spans]
    weights = [len(s) for s in spans]
    st = SentenceTransformer(str(st_matryoshka[0]), device="cpu")
    unnormalised = SentenceTransformer(modules=[st[0], st[1]], device="cpu")
    retokenized = [st.tokenize([p])["input_ids"][0].tolist() for p in pieces]
    assert retokenized == [w.ids for w in windows]  # each window's text is exactly that window
    vectors = unnormalised.encode(pieces)
    mean = (vectors * np.array(weights)[:, None]).sum(axis=0) / sum(weights)
    reference = mean / np.linalg.norm(mean)
    ours = pipe(text, long="chunk", stride=4)
    assert np.max(np.abs(ours - reference)) < 1e-5
    # the default stride (an eighth of the window) and a batch with short texts: each input's own windows
    together = pipe([short, text, TEXTS[1]], long="chunk")
    assert np.allclose(together[1], pipe(text, long="chunk"), atol=1e-6)
    assert np.allclose(together[0], pipe(short), atol=1e-6)
    assert not np.allclose(pipe(text), ours, atol=1e-3)  # truncation (the default) keeps the first window only
    with pytest.raises(ValueError, match="long must be one of truncate, chunk"):
        pipe(text, long="split")
    with pytest.raises(ValueError, match="stride is for long='chunk'"):
        pipe(text, stride=4)
    with pytest.raises(ValueError, match="stride must be less than half the 16-token window"):
        pipe(text, long="chunk", stride=8)


def test_score_keeps_the_bits(pipe, st_matryoshka, tmp_path):
    """`onnxpipe score` writes each precision as a fixed-size list of its own type (binary: packed bits), the
    pipeline's vectors bit for bit; truncate_dim and long="chunk" pass through --params."""
    import json

    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    from onnxpipe.cli import main

    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS), encoding="utf-8")
    cases = [
        ({"precision": "int8"}, pa.list_(pa.int8(), 32)),
        ({"precision": "ubinary", "truncate_dim": 16}, pa.list_(pa.uint8(), 2)),
        ({"long": "chunk", "truncate_dim": 8, "normalize": True}, pa.list_(pa.float32(), 8)),
    ]
    for i, (params, arrow) in enumerate(cases):
        out = tmp_path / f"out{i}.parquet"
        args = ["score", str(source), str(out), "-m", str(st_matryoshka[1]), "--params", json.dumps(params)]
        assert main([*args, "--no-progress"]) == 0
        column = pq.read_table(out).column("embedding")
        assert column.type == arrow, params
        got = np.array(column.to_pylist(), dtype=arrow.value_type.to_pandas_dtype())
        assert np.array_equal(got, pipe(TEXTS, **params)), params


def test_run_and_explain_take_the_options(pipe, st_matryoshka, capsys):
    """`onnxpipe run --params` passes the options through; `explain` lists a long text's windows."""
    import json

    from onnxpipe.cli import main

    text = " ".join([TEXTS[3]] * 5)
    params = {"long": "chunk", "precision": "int8"}
    args = ["-m", str(st_matryoshka[1]), "--task", "sentence-embeddings", "--params", json.dumps(params)]
    assert main(["run", text, *args]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["embedding"] == pipe(text, **params).tolist()
    assert main(["explain", text, *args]) == 0
    shown = capsys.readouterr().out
    windows = len(pipe.plan(text, long="chunk").features)
    assert windows >= 3 and f"window {windows}/{windows}: characters" in shown


def test_plain_checkpoint(artifact):
    """A plain (not sentence-transformers) checkpoint: its width is recorded, so truncate_dim is checked before a
    run; it records no int8 ranges (none asked for), so int8 asks for the caller's."""
    plain = onnxpipe.pipeline("sentence-embeddings", model=artifact("bert", "base"))
    assert plain.dimension == 32 and plain(TEXTS, truncate_dim=8).shape == (len(TEXTS), 8)
    with pytest.raises(ValueError, match="truncate_dim must be between 1 and 32, got 33"):
        plain.read(TEXTS, truncate_dim=33)
    with pytest.raises(ValueError, match="has none for unnormalised 32-dimensional vectors .it records none.: pass"):
        plain(TEXTS, precision="int8")
    assert plain(TEXTS, precision="int8", ranges=[[-1] * 32, [1] * 32]).dtype == np.int8


def test_export_cli_takes_matryoshka_dims(st_matryoshka, tmp_path, capsys):
    import json

    from onnxpipe.cli import main

    args = ["export", str(st_matryoshka[0]), str(tmp_path / "art"), "--task", "sentence-embeddings"]
    assert main([*args, "--matryoshka-dims", "8,16"]) == 0
    embedding = json.loads((tmp_path / "art" / "onnxpipe.json").read_text())["embedding"]
    assert embedding["matryoshka_dims"] == [16, 8] and sorted(embedding["int8_ranges"]) == [
        "raw:32",
        "unit:16",
        "unit:32",
        "unit:8",
    ]
    assert embedding["calibration"] == "bundled general-en.txt (92 texts)"
    with pytest.raises(SystemExit):
        main([*args, "--matryoshka-dims", "16,x"])
    assert main([*args[:2], str(tmp_path / "other"), *args[3:], "--matryoshka-dims", "64"]) != 0
    assert "matryoshka dims [64] are outside this model's 1..32 dimensions" in capsys.readouterr().err
