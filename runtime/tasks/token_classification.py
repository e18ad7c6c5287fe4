"""token-classification (alias ner): per-token labels, grouped into entities, exactly as transformers gives them.

``pipe(text)`` → ``[{'entity', 'score', 'index', 'word', 'start', 'end'}]`` per token (``aggregation_strategy``
"none", the default), or ``[{'entity_group', 'score', 'word', 'start', 'end'}]`` per entity ("simple",
"first", "average", "max"); ``ignore_labels`` (default ``["O"]``); ``is_split_into_words`` for lists of
words; ``stride`` runs text past the position limit as overlapping windows instead of cutting it.

The gather → aggregate → group steps follow transformers' ``TokenClassificationPipeline`` line for line
(its rules for subwords, unknown tokens and window overlaps are what users' code depends on); they are
re-stated here over the tokenizers library's encodings because that pipeline needs torch. Longer than 300
lines for that reason: gather, aggregate and group follow transformers' own methods one for one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputTypeError, InputValueError
from ..inputs import Post, Pre, check_int, check_texts, is_stream
from ..arrays import Outputs
from ..artifact import Artifact
from ..pipeline import Feature, Pipeline
from ..postprocess import softmax

STRATEGIES = ("none", "simple", "first", "average", "max")


Entity = dict[str, Any]  # {entity | entity_group, score, index?, word, start, end}, as transformers gives it


@dataclass(frozen=True, kw_only=True)
class WordsPre(Pre):
    words: bool  # is_split_into_words: each input is a list of words
    delimiter: str  # what joins pre-split words into the sentence the offsets point into
    stride: int | None  # text past the limit runs as windows overlapping by this many tokens; None: cut


@dataclass(frozen=True, kw_only=True)
class EntitiesPost(Post):
    strategy: str  # aggregation_strategy, lower case
    ignore_labels: tuple[str, ...]


class TokenClassificationPipeline(Pipeline[str | list[str], list[Entity], list[Entity]]):
    task = "token-classification"
    result_key = "entities"

    def __init__(self, artifact: Artifact, *args: Any, **kwargs: Any):
        super().__init__(artifact, *args, **kwargs)
        tokenizer = self.encoder.tokenizer
        # WordPiece marks pieces ("##"): a piece is a token shorter or longer than its text. Other models
        # fall back to transformers' heuristic (no space before the token).
        self.subword_prefix = getattr(tokenizer.model, "continuing_subword_prefix", None)
        unk = artifact.manifest.tokenizer.unk_token
        self.unk_id = tokenizer.token_to_id(unk) if unk else None

    @staticmethod
    def check_inputs(inputs: Any) -> tuple[list[Any], str | None]:
        """Texts as every text task takes them, or lists of words (is_split_into_words)."""
        if isinstance(inputs, (list, tuple)) and inputs and all(isinstance(w, (list, tuple)) for w in inputs):
            for i, words in enumerate(inputs):
                if not all(isinstance(w, str) for w in words):
                    raise InputTypeError(f"inputs[{i}] must be a list of str words")
            return [list(w) for w in inputs], None
        return check_texts(inputs)

    def parse(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        # With is_split_into_words a list of words is one input, answered (as transformers does) as a list of one.
        inputs, params = super().parse(args, kwargs)
        if (
            not isinstance(inputs, str)
            and not is_stream(inputs)
            and (not isinstance(inputs, (list, tuple)) or not inputs)
        ):
            raise InputValueError("At least one input is required.")  # transformers' word for [] and None
        words = {**self.defaults, **params}.get("is_split_into_words")
        if words and isinstance(inputs, (list, tuple)) and inputs and all(isinstance(w, str) for w in inputs):
            inputs = [list(inputs)]
        return inputs, params

    def sanitize_parameters(
        self,
        ignore_labels: list[str] | None = None,
        grouped_entities: bool | None = None,
        ignore_subwords: bool | None = None,
        aggregation_strategy: str | None = None,
        offset_mapping: Any = None,
        is_split_into_words: bool = False,
        stride: int | None = None,
        delimiter: str | None = None,
    ) -> tuple[WordsPre, EntitiesPost]:
        if offset_mapping is not None:
            raise InputValueError(
                "offset_mapping is for slow tokenizers; onnxpipe's tokenizer.json gives offsets itself"
            )
        if grouped_entities is not None or ignore_subwords is not None:  # transformers' deprecated switches
            aggregation_strategy = (
                "first" if grouped_entities and ignore_subwords else "simple" if grouped_entities else "none"
            )
        chosen = aggregation_strategy is not None  # stride refuses a strategy "none" named, not the default
        strategy = (
            "none"
            if aggregation_strategy is None
            else str(getattr(aggregation_strategy, "value", aggregation_strategy)).lower()
        )
        if strategy not in STRATEGIES:
            raise InputValueError(f"aggregation_strategy must be one of {STRATEGIES}, got {aggregation_strategy!r}")
        if ignore_labels is not None and not isinstance(ignore_labels, (list, tuple, set)):
            raise InputTypeError(f"ignore_labels must be a list of labels, got {type(ignore_labels).__name__}")
        if stride is not None:
            check_int(stride, "stride", 0)
            if stride >= self.encoder.max_length:
                raise InputValueError(
                    f"`stride` must be less than the model's limit of {self.encoder.max_length} tokens "
                    "(or even lower, less the special tokens)"
                )
            if strategy == "none" and chosen:
                raise InputValueError(
                    '`stride` was provided to process all the text but `aggregation_strategy="none"`, '
                    "please select another one instead."
                )
        pre = WordsPre(
            words=bool(is_split_into_words), delimiter=" " if delimiter is None else delimiter, stride=stride
        )
        labels = ("O",) if ignore_labels is None else tuple(ignore_labels)
        return pre, EntitiesPost(strategy=strategy, ignore_labels=labels)

    def preprocess(self, items: list[Any], pre: WordsPre) -> list[Feature]:
        words, delimiter, stride = pre.words, pre.delimiter, pre.stride
        sentences: list[str] = []
        char_maps: list[list[int] | None] = []  # each word's first character, for pre-split words
        for i, item in enumerate(items):
            if words != isinstance(item, list):
                raise InputValueError(
                    f"inputs[{i}]: with is_split_into_words=True each input must be a list of words, "
                    "else an untokenized string"
                )
            if words:
                starts, at = [], 0
                for w in item:
                    starts.append(at)
                    at += len(w) + len(delimiter)
                sentences.append(delimiter.join(item))
                char_maps.append(starts)
            else:
                sentences.append(item)
                char_maps.append(None)
        encodings = self.encode(items, stride=stride or 0, pretokenized=words)
        features = []
        for i, e in enumerate(encodings):
            windows = [e, *e.overflowing] if stride is not None else [e]
            for w in windows:
                features.append(Feature(w, i, len(w), context=(sentences[i], char_maps[i])))
        return features

    def postprocess(self, features: list[Feature], outputs: Outputs, post: EntitiesPost) -> list[Any]:
        strategy, ignore_labels = post.strategy, post.ignore_labels
        results = []
        for j, f in enumerate(features):
            scores = softmax(outputs["logits"][j, : f.length].astype(np.float32))
            entities = self.group(self.gather(f, scores, strategy), strategy)
            results.append(
                [
                    e
                    for e in entities
                    if e.get("entity") not in ignore_labels and e.get("entity_group") not in ignore_labels
                ]
            )
        return results

    def aggregate(self, item: Any, values: list[list[Entity]], post: EntitiesPost) -> list[Entity]:
        entities = [e for window in values for e in window]
        return overlapping(entities) if len(values) > 1 else entities

    def explain_lines(self, features: list[Feature], outputs: Outputs, post: EntitiesPost) -> list[str]:
        """Each window's tokens with their own label (before grouping); the result shows the grouping."""
        lines = []
        tokens_only = EntitiesPost(strategy="none", ignore_labels=())
        for j, (f, tokens) in enumerate(zip(features, self.postprocess(features, outputs, tokens_only))):
            first, last = f.encoding.offsets[1][0] if f.length > 2 else 0, max(o[1] for o in f.encoding.offsets)
            lines.append(
                f"window {j + 1}/{len(features)} (characters {first}–{last}): "
                + " ".join(f"{t['word']}/{t['entity']}" for t in tokens)
            )
        return [*lines, f"grouped by aggregation_strategy={post.strategy!r}, ignoring {list(post.ignore_labels)}"]

    # -- transformers' gather_pre_entities / aggregate / group_entities ------------------------------
    def gather(self, feature: Feature, scores: np.ndarray, strategy: str) -> list[Entity]:
        e = feature.encoding
        sentence, word_starts = feature.context
        tokenizer = self.encoder.tokenizer
        pre = []
        for idx in range(feature.length):
            if e.special_tokens_mask[idx]:
                continue
            token_id = e.ids[idx]
            word = tokenizer.id_to_token(token_id)
            start, end = e.offsets[idx]
            if word_starts is not None and e.word_ids[idx] is not None:  # offsets are within each word
                start += word_starts[e.word_ids[idx]]
                end += word_starts[e.word_ids[idx]]
            word_ref = sentence[start:end]
            if self.subword_prefix:
                is_subword = len(word) != len(word_ref)
            else:
                is_subword = start > 0 and " " not in sentence[start - 1 : start + 1]
            if token_id == self.unk_id:
                word, is_subword = word_ref, False
            pre.append(
                {
                    "word": word,
                    "scores": scores[idx],
                    "start": start,
                    "end": end,
                    "index": idx,
                    "is_subword": is_subword,
                }
            )
        return pre

    def group(self, pre: list[Entity], strategy: str) -> list[Entity]:
        if strategy in ("none", "simple"):
            entities = []
            for p in pre:
                best = int(p["scores"].argmax())
                entities.append(
                    {
                        "entity": self.artifact.id2label[best],
                        "score": float(p["scores"][best]),
                        "index": p["index"],
                        "word": p["word"],
                        "start": p["start"],
                        "end": p["end"],
                    }
                )
        else:
            entities = self.words(pre, strategy)
        return entities if strategy == "none" else self.group_entities(entities)

    def words(self, pre: list[Entity], strategy: str) -> list[Entity]:
        """Tokens of one word forced to one label (first / average / max), as transformers' aggregate_words."""
        out, group = [], None
        for p in pre:
            if group is None:
                group = [p]
            elif p["is_subword"]:
                group.append(p)
            else:
                out.append(self.word(group, strategy))
                group = [p]
        if group is not None:
            out.append(self.word(group, strategy))
        return out

    def word(self, pieces: list[Entity], strategy: str) -> Entity:
        if strategy == "first":
            scores = pieces[0]["scores"]
        elif strategy == "max":
            scores = max(pieces, key=lambda p: p["scores"].max())["scores"]
        else:
            scores = np.nanmean(np.stack([p["scores"] for p in pieces]), axis=0)
        best = int(scores.argmax())
        return {
            "entity": self.artifact.id2label[best],
            "score": float(scores[best]),
            "word": self.tokens_to_string([p["word"] for p in pieces]),
            "start": pieces[0]["start"],
            "end": pieces[-1]["end"],
        }

    def group_entities(self, entities: list[Entity]) -> list[Entity]:
        groups: list[Entity] = []
        current: list[Entity] = []
        for entity in entities:
            if not current:
                current.append(entity)
                continue
            bi, tag = bio(entity["entity"])
            _, last_tag = bio(current[-1]["entity"])
            if tag == last_tag and bi != "B":
                current.append(entity)
            else:
                groups.append(self.group_sub_entities(current))
                current = [entity]
        if current:
            groups.append(self.group_sub_entities(current))
        return groups

    def group_sub_entities(self, entities: list[Entity]) -> Entity:
        score = np.nanmean(np.array([e["score"] for e in entities], dtype=np.float32))
        return {
            "entity_group": entities[0]["entity"].split("-", 1)[-1],
            "score": float(np.mean(score)),
            "word": self.tokens_to_string([e["word"] for e in entities]),
            "start": entities[0]["start"],
            "end": entities[-1]["end"],
        }

    def tokens_to_string(self, tokens: list[str]) -> str:
        decoder = self.encoder.tokenizer.decoder
        return decoder.decode(tokens) if decoder is not None else " ".join(tokens)


def bio(label: str) -> tuple[str, str]:
    if label.startswith("B-"):
        return "B", label[2:]
    if label.startswith("I-"):
        return "I", label[2:]
    return "I", label


def overlapping(entities: list[Entity]) -> list[Entity]:
    """Entities from overlapping windows: of two that overlap, the longer (then the higher-scoring) stays."""
    if not entities:
        return entities
    entities = sorted(entities, key=lambda e: e["start"])
    kept, previous = [], entities[0]
    for entity in entities:
        if previous["start"] <= entity["start"] < previous["end"]:
            length, previous_length = entity["end"] - entity["start"], previous["end"] - previous["start"]
            if length > previous_length or (length == previous_length and entity["score"] > previous["score"]):
                previous = entity
        else:
            kept.append(previous)
            previous = entity
    kept.append(previous)
    return kept
