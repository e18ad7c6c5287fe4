"""Tokenization with tokenizer.json alone: exact ids, padding to the batch's longest, truncation."""

from __future__ import annotations

import json

import pytest

from conftest import SEED_SENTENCE
from onnxpipe.tokenize import TextEncoder

# The ids the seed notebook shows for its sentence with the bert-base-uncased vocabulary (🤗 → [UNK]).
SEED_IDS = [101, 2057, 2024, 2200, 3407, 2000, 2265, 2017, 1996, 100, 19081, 3075, 1012, 102]


@pytest.fixture(scope="module")
def minilm_encoder(minilm_dir):
    return TextEncoder(minilm_dir / "tokenizer.json", max_length=512, pad_id=0, pad_token="[PAD]")


def test_packaged_minilm_tokenizer_reproduces_seed_ids(minilm_encoder, minilm_dir):
    assert minilm_encoder.encode([SEED_SENTENCE])[0].ids == SEED_IDS
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(minilm_dir)(SEED_SENTENCE)["input_ids"] == SEED_IDS


def test_fixed_padding_in_tokenizer_json_is_not_applied(minilm_encoder, minilm_dir):
    # The packaged tokenizer.json pins padding (and truncation) to 128 tokens.
    pinned = json.loads((minilm_dir / "tokenizer.json").read_text())
    assert pinned["padding"]["strategy"] == {"Fixed": 128}
    feed = minilm_encoder.collate(minilm_encoder.encode([SEED_SENTENCE]))
    assert feed["input_ids"].shape == (1, len(SEED_IDS))
    feed = minilm_encoder.collate(minilm_encoder.encode(["short", SEED_SENTENCE]))
    assert feed["input_ids"].shape == (2, len(SEED_IDS))
    assert feed["attention_mask"][0].tolist() == [1, 1, 1] + [0] * (len(SEED_IDS) - 3)
    assert feed["input_ids"][0, 3:].tolist() == [0] * (len(SEED_IDS) - 3)
    assert {k: v.dtype.name for k, v in feed.items()} == {
        "input_ids": "int64",
        "attention_mask": "int64",
        "token_type_ids": "int64",
    }


def test_truncation_uses_the_model_limit_not_the_pinned_one(minilm_encoder):
    (enc,) = minilm_encoder.encode(["good " * 300])
    assert len(enc.ids) == 302  # past the pinned 128, within the model's 512
    (enc,) = minilm_encoder.encode(["good " * 2000])
    assert len(enc.ids) == 512 and enc.ids[0] == 101 and enc.ids[-1] == 102


def test_tokenizers_for_other_settings_are_bounded_and_still_exact(minilm_encoder):
    """Every (max_length, strategy, stride) a caller asks for is a tokenizer copy; only the last few stay,
    and one evicted and made again truncates exactly as before."""
    from onnxpipe.tokenize import MAX_VARIANTS

    text = "the food was good but the service was bad " * 5
    first = [e.ids for e in minilm_encoder.encode([text, text], max_length=7)]
    for n in range(8, 300):
        assert len(minilm_encoder.encode([text], max_length=n, stride=n % 3)[0]) == min(
            n, 47
        )  # 45 words and [CLS], [SEP]
    assert len(minilm_encoder._variants) == MAX_VARIANTS
    assert [e.ids for e in minilm_encoder.encode([text, text], max_length=7)] == first
    assert first[0] == SEED_IDS[:1] + minilm_encoder.encode([text], add_special_tokens=False)[0].ids[:5] + [102]
