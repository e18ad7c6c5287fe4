"""Check an exported graph against PyTorch on fixed sample sentences before the artifact is written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from onnxpipe.postprocess import sigmoid, softmax
from onnxpipe.session import Session
from onnxpipe.tokenize import TextEncoder

# Short, long, emoji, accented, CJK, empty, and one far past any position limit (truncated).
SAMPLES = (
    "We are very happy to show you the 🤗 Transformers library.",
    "Terrible.",
    "A gripping, beautifully shot film whose quiet final act lingers long after the credits; the cast is "
    "uniformly strong, though the middle stretch drags and a subplot about the brother goes nowhere. "
    "Still, it is the rare drama that trusts its audience, and I would happily watch it again.",
    "The food was 🔥🔥🔥 but the service 😡😡 ... never again 👎",
    "Ce film était très émouvant, à voir absolument. Größte Überraschung des Jahres — ¡qué maravilla!",
    "这部电影非常好看。映画はとても面白かった。이 영화 정말 좋아요.",
    "",
    "an endless, repetitive story " * 400,
)

FP32_MAX_GAP = 1e-4
BATCH_MAX_GAP = 1e-4  # a variant whose scores move more than this with the batch is never the default


def torch_logits(model, tokenizer, texts: list[str], max_length: int) -> tuple[np.ndarray, list[list[int]]]:
    """PyTorch logits one text at a time (no padding), plus the transformers tokenizer's ids."""
    import inspect

    accepted = set(inspect.signature(model.forward).parameters)  # DistilBERT takes no token_type_ids
    rows, ids = [], []
    with torch.no_grad():
        for text in texts:
            enc = tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt")
            rows.append(model(**{k: v for k, v in enc.items() if k in accepted}).logits[0].float().numpy())
            ids.append(enc["input_ids"][0].tolist())
    return np.stack(rows), ids


def onnx_logits(session: Session, encoder: TextEncoder, texts: list[str]) -> tuple[np.ndarray, list[list[int]]]:
    """The runtime's own path: tokenizer.json encodings, one padded batch, one session run."""
    encodings = encoder.encode(texts)
    ids = [list(e.ids) for e in encodings]
    logits = session.run(encoder.collate(encodings))["logits"]
    return logits, ids


def graph_logits(onnx_path: Path, encoder: TextEncoder, texts: list[str], batch_size: int = 32) -> np.ndarray:
    """Logits for many texts, length-sorted into padded batches as the runtime batches them."""
    session = Session(onnx_path)
    encodings = encoder.encode(texts)
    order = sorted(range(len(texts)), key=lambda i: len(encodings[i]))
    rows: list = [None] * len(texts)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        for i, row in zip(idx, session.run(encoder.collate([encodings[i] for i in idx]))["logits"]):
            rows[i] = row
    return np.stack(rows)


def batch_invariance(session: Session, encoder: TextEncoder, texts: list[str]) -> dict:
    """Each text alone vs all of them in one padded batch: the largest score gap and the label flips."""
    alone = np.concatenate([session.run(encoder.collate(encoder.encode([t])))["logits"] for t in texts])
    together = session.run(encoder.collate(encoder.encode(texts)))["logits"]
    gap = float(np.max(np.abs(scores(alone) - scores(together))))
    flips = int(np.sum(alone.argmax(-1) != together.argmax(-1))) if alone.shape[-1] > 1 else \
        int(np.sum((alone[:, 0] > 0) != (together[:, 0] > 0)))
    return {"max_score_gap": gap, "label_flips": flips}


def scores(logits: np.ndarray) -> np.ndarray:
    """Probabilities (softmax, or sigmoid for one logit): what a batch-invariance gap is stated in."""
    return sigmoid(logits) if logits.shape[-1] == 1 else softmax(logits)


def compare(reference: np.ndarray, candidate: np.ndarray) -> dict:
    gap = float(np.max(np.abs(reference - candidate)))
    if reference.shape[-1] > 1:
        agree = float(np.mean(reference.argmax(-1) == candidate.argmax(-1)))
    else:  # one logit (regression or single-label sigmoid): agreement on the sign
        agree = float(np.mean((reference[:, 0] > 0) == (candidate[:, 0] > 0)))
    return {"max_logit_gap": gap, "label_agreement": agree, "samples": int(reference.shape[0])}
