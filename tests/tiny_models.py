"""Tiny randomly initialised checkpoints, built from transformers configs and a `tokenizers` tokenizer.

Each is a real HF checkpoint folder (config, safetensors weights, tokenizer.json) the exporter loads
exactly as it would a hub download; only the sizes are small.
"""

from __future__ import annotations

from pathlib import Path

CORPUS = [
    "We are very happy to show you the Transformers library.",
    "This movie was terrible, boring and far too long.",
    "A beautiful, moving film with a great cast.",
    "I hate it. I love it. Never again, always yes.",
    "the food was good but the service was bad",
    "très émouvant, à voir absolument",
    "这部电影非常好看",
] * 20

SIZES = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    initializer_range=0.3,
    max_position_embeddings=64,
)


def _corpus_units() -> tuple[list[str], list[str]]:
    """Sorted words and characters of the corpus: fixed vocabularies, unlike the `tokenizers` trainers,
    whose WordPiece and Unigram vocabularies change from run to run (ties broken by hash order)."""
    import unicodedata

    text = unicodedata.normalize("NFC", " ".join(CORPUS).lower())
    words = sorted({w.strip(".,!") for w in text.split()} - {""})
    chars = sorted({c for c in text if not c.isspace()})
    return words, chars


def wordpiece_tokenizer():
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    words, chars = _corpus_units()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    pieces = specials + chars + ["##" + c for c in chars] + [w for w in words if w not in chars]
    tok = Tokenizer(models.WordPiece({p: i for i, p in enumerate(pieces)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.post_processor = processors.BertProcessing(("[SEP]", 3), ("[CLS]", 2))
    return tok, dict(unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")


def bytelevel_tokenizer():
    from tokenizers import ByteLevelBPETokenizer, processors

    tok = ByteLevelBPETokenizer()
    tok.train_from_iterator(
        CORPUS, vocab_size=400, min_frequency=1, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    )
    tok._tokenizer.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    return tok._tokenizer, dict(
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        cls_token="<s>",
        sep_token="</s>",
        mask_token="<mask>",
    )


def unigram_tokenizer():
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    words, chars = _corpus_units()
    specials = ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"]
    vocab = (
        [(p, 0.0) for p in specials] + [("▁" + w, -5.0) for w in words] + [("▁", -8.0)] + [(c, -10.0) for c in chars]
    )
    tok = Tokenizer(models.Unigram(vocab, unk_id=1, byte_fallback=False))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    return tok, dict(unk_token="<unk>", pad_token="<pad>", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")


def _config(arch: str, vocab_size: int, **head):
    import transformers as tf

    if arch == "bert":
        return tf.BertConfig(vocab_size=vocab_size, **SIZES, **head)
    if arch == "distilbert":
        return tf.DistilBertConfig(
            vocab_size=vocab_size,
            dim=32,
            n_layers=2,
            n_heads=4,
            hidden_dim=37,
            max_position_embeddings=64,
            initializer_range=0.3,
            **head,
        )
    if arch == "roberta":
        return tf.RobertaConfig(
            vocab_size=vocab_size,
            **{**SIZES, "max_position_embeddings": 66},
            pad_token_id=1,
            bos_token_id=0,
            eos_token_id=2,
            **head,
        )
    if arch == "albert":
        return tf.AlbertConfig(vocab_size=vocab_size, embedding_size=16, **SIZES, pad_token_id=0, **head)
    if arch == "electra":
        return tf.ElectraConfig(vocab_size=vocab_size, embedding_size=16, **SIZES, **head)
    if arch == "xlm-roberta":  # RoBERTa's encoder with a SentencePiece (Unigram) vocabulary; pad is id 0 there
        return tf.XLMRobertaConfig(
            vocab_size=vocab_size,
            **{**SIZES, "max_position_embeddings": 66},
            pad_token_id=0,
            bos_token_id=2,
            eos_token_id=3,
            **head,
        )
    if arch == "deberta-v2":  # DeBERTa-v3's shape: relative attention, position buckets, no token type ids
        return tf.DebertaV2Config(
            vocab_size=vocab_size,
            **SIZES,
            relative_attention=True,
            position_buckets=16,
            max_relative_positions=-1,
            pos_att_type=["p2c", "c2p"],
            position_biased_input=False,
            type_vocab_size=0,
            norm_rel_ebd="layer_norm",
            share_att_key=True,
            pad_token_id=0,
            **head,
        )
    if arch == "mpnet":  # positions from the pad id, as RoBERTa's: two more slots
        return tf.MPNetConfig(vocab_size=vocab_size, **{**SIZES, "max_position_embeddings": 66}, pad_token_id=0, **head)
    if arch == "modernbert":
        return tf.ModernBertConfig(
            vocab_size=vocab_size,
            hidden_size=32,
            num_hidden_layers=3,
            num_attention_heads=4,
            intermediate_size=37,
            max_position_embeddings=64,
            global_attn_every_n_layers=2,
            local_attention=16,
            initializer_range=0.3,
            pad_token_id=0,
            cls_token_id=2,
            sep_token_id=3,
            bos_token_id=2,
            eos_token_id=3,
            **head,
        )
    raise ValueError(arch)


# Every architecture the parity tests run, each with every head its transformers classes have.
ARCHS = ("bert", "distilbert", "roberta", "albert", "electra", "xlm-roberta", "deberta-v2", "mpnet", "modernbert")

TOKENIZERS = {
    "bert": wordpiece_tokenizer,
    "distilbert": wordpiece_tokenizer,
    "electra": wordpiece_tokenizer,
    "roberta": bytelevel_tokenizer,
    "albert": unigram_tokenizer,
    "xlm-roberta": unigram_tokenizer,
    "deberta-v2": unigram_tokenizer,  # v3's SentencePiece (Unigram) kind, ▁ offsets
    "mpnet": wordpiece_tokenizer,
    "modernbert": wordpiece_tokenizer,
}

HEADS = {
    "single": dict(num_labels=3, id2label={0: "neg", 1: "neu", 2: "pos"}, label2id={"neg": 0, "neu": 1, "pos": 2}),
    "multi": dict(
        num_labels=4,
        problem_type="multi_label_classification",
        id2label={0: "joy", 1: "anger", 2: "fear", 3: "love"},
        label2id={"joy": 0, "anger": 1, "fear": 2, "love": 3},
    ),
    "regression": dict(num_labels=1, problem_type="regression", id2label={0: "LABEL_0"}, label2id={"LABEL_0": 0}),
    # An NLI head, as zero-shot classification reads it: the entailment index found by its name.
    "nli": dict(
        num_labels=3,
        id2label={0: "contradiction", 1: "neutral", 2: "entailment"},
        label2id={"contradiction": 0, "neutral": 1, "entailment": 2},
    ),
}
# Heads that are not sequence classifiers: the transformers class each is built with, and the task it exports for.
OTHER_HEADS = {
    "mlm": ("AutoModelForMaskedLM", "fill-mask"),
    "base": ("AutoModel", "feature-extraction"),
    "ner": ("AutoModelForTokenClassification", "token-classification"),
    "qa": ("AutoModelForQuestionAnswering", "question-answering"),
}
NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "MISC"]  # MISC: a tag without B-/I-


def task_of(head: str) -> str:
    return OTHER_HEADS[head][1] if head in OTHER_HEADS else "text-classification"


def build_checkpoint(folder: Path, arch: str = "bert", head: str = "single", seed: int = 0) -> Path:
    """Write a tiny random ``arch`` model with ``head`` (a classifier head of HEADS, "mlm" or "base") and its
    tokenizer to ``folder``."""
    import torch
    import transformers
    from transformers import PreTrainedTokenizerFast

    backend, specials = TOKENIZERS[arch]()
    # As the real DistilBERT and RoBERTa tokenizers do, produce no token_type_ids for them.
    no_types = ("distilbert", "roberta", "xlm-roberta", "deberta-v2", "mpnet", "modernbert")
    names = ["input_ids", "attention_mask"] if arch in no_types else None
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, model_max_length=512, **specials, **({"model_input_names": names} if names else {})
    )
    labels = dict(enumerate(NER_LABELS)) if head == "ner" else None
    ner = (
        dict(num_labels=len(NER_LABELS), id2label=labels, label2id={v: k for k, v in labels.items()}) if labels else {}
    )
    config = _config(arch, backend.get_vocab_size(), **HEADS.get(head, ner))
    torch.manual_seed(seed)
    # initializer_range 0.3 (not 0.02) so that logits, and so labels, differ from input to input.
    auto = getattr(transformers, OTHER_HEADS[head][0] if head in OTHER_HEADS else "AutoModelForSequenceClassification")
    model = auto.from_config(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_base_encoder(folder: Path, seed: int = 0) -> Path:
    """A tiny BERT encoder with no head (as all-MiniLM-L6-v2 is) plus its tokenizer."""
    import torch
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    backend, specials = wordpiece_tokenizer()
    torch.manual_seed(seed)
    BertModel(BertConfig(vocab_size=backend.get_vocab_size(), **SIZES)).save_pretrained(folder)
    PreTrainedTokenizerFast(tokenizer_object=backend, model_max_length=512, **specials).save_pretrained(folder)
    return folder
