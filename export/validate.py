"""Check an exported graph against PyTorch on fixed sample sentences before the artifact is written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

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


def onnx_logits(onnx_path: Path, encoder: TextEncoder, texts: list[str]) -> tuple[np.ndarray, list[list[int]]]:
    """The runtime's own path: tokenizer.json encodings, one padded batch, one session run."""
    session = Session(onnx_path, threads=1)
    encodings = encoder.encode(texts)
    ids = [list(e.ids) for e in encodings]
    logits = session.run(encoder.collate(encodings))["logits"]
    return logits, ids


def compare(reference: np.ndarray, candidate: np.ndarray) -> dict:
    gap = float(np.max(np.abs(reference - candidate)))
    if reference.shape[-1] > 1:
        agree = float(np.mean(reference.argmax(-1) == candidate.argmax(-1)))
    else:  # one logit (regression or single-label sigmoid): agreement on the sign
        agree = float(np.mean((reference[:, 0] > 0) == (candidate[:, 0] > 0)))
    return {"max_logit_gap": gap, "label_agreement": agree, "samples": int(reference.shape[0])}
