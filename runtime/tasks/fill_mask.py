"""fill-mask: the most likely tokens for each mask token, as transformers' fill-mask pipeline gives them.

``pipe("Paris is the [MASK] of France.")`` → ``[{'score', 'token', 'token_str', 'sequence'}]`` best first
(``top_k``, default 5; ``targets`` restricts the candidates); with several masks, one such list per mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict

import numpy as np

from .. import postprocess as post
from ..errors import InputTypeError, InputValueError, OnnxPipeError
from ..inputs import Post, TruncatedPre, check_int, check_texts, check_truncation
from ..arrays import Array, Outputs
from ..artifact import Artifact
from ..pipeline import Feature, Pipeline


def clean_up_tokenization(text: str) -> str:
    """transformers' ``clean_up_tokenization`` (spaces before punctuation and contractions), which its
    decode applies on top of the tokenizers library's when the tokenizer's config asks for it."""
    for before, after in (
        (" .", "."),
        (" ?", "?"),
        (" !", "!"),
        (" ,", ","),
        (" ' ", "'"),
        (" n't", "n't"),
        (" 'm", "'m"),
        (" 's", "'s"),
        (" 've", "'ve"),
        (" 're", "'re"),
    ):
        text = text.replace(before, after)
    return text


class Proposal(TypedDict):
    score: float
    token: int
    token_str: str
    sequence: str


Filled = list[Proposal] | list[list[Proposal]]  # one mask's proposals, or one list per mask


@dataclass(frozen=True, kw_only=True)
class ProposalsPost(Post):
    top_k: int  # proposals per mask
    target_ids: tuple[int, ...] | None  # the only candidates (targets), in transformers' order; None: the vocabulary


class FillMaskPipeline(Pipeline[str, Filled, Filled]):
    task = "fill-mask"
    result_key = "predictions"

    def check_inputs(self, inputs: Any) -> tuple[list[str], str | None]:
        return check_texts(inputs)

    def __init__(self, artifact: Artifact, *args: Any, **kwargs: Any):
        tok = artifact.manifest.tokenizer
        if tok.mask_id is None or tok.mask_token is None:
            raise OnnxPipeError(f"{artifact.path}: the tokenizer defines no mask token, so fill-mask cannot run")
        self.mask_id, self.mask_token = tok.mask_id, tok.mask_token
        self.clean_up = tok.clean_up_tokenization_spaces
        super().__init__(artifact, *args, **kwargs)

    def sanitize_parameters(
        self,
        top_k: int | None = None,
        targets: str | list[str] | None = None,
        tokenizer_kwargs: dict[str, Any] | None = None,
    ) -> tuple[TruncatedPre, ProposalsPost]:
        tokenizer_kwargs = dict(tokenizer_kwargs or {})
        unknown = set(tokenizer_kwargs) - {"truncation", "max_length", "padding"}
        if unknown:
            raise InputValueError(f"tokenizer_kwargs {sorted(unknown)} are not supported (truncation, max_length are)")
        cut = check_truncation(tokenizer_kwargs.get("truncation"), tokenizer_kwargs.get("max_length"))
        top_k = 5 if top_k is None else top_k
        check_int(top_k, "top_k", 0)  # 0: no proposals, as there
        target_ids = None if targets is None else self.target_ids(targets)
        if target_ids is not None and len(target_ids) < top_k:
            top_k = len(target_ids)
        vocab = self.encoder.tokenizer.get_vocab_size(with_added_tokens=True)
        if top_k > vocab:
            raise InputValueError(f"top_k={top_k} is more than the {vocab} tokens of the vocabulary")
        ids = None if target_ids is None else tuple(target_ids)
        return TruncatedPre(truncation=cut), ProposalsPost(top_k=top_k, target_ids=ids)

    def target_ids(self, targets: str | list[str]) -> list[int]:
        """transformers' rule: a target in the vocabulary is its id; else its first token's id (none: skipped)."""
        targets = [targets] if isinstance(targets, str) else targets
        if not isinstance(targets, (list, tuple)) or not all(isinstance(t, str) for t in targets):
            raise InputTypeError("targets must be a str or a list of str")
        vocab = self.encoder.tokenizer.get_vocab(with_added_tokens=True)
        ids = []
        for target in targets:
            id_ = vocab.get(target)
            if id_ is None:
                pieces = self.encoder.tokenizer.encode(target, add_special_tokens=False).ids
                if not pieces:
                    continue
                id_ = pieces[0]
            ids.append(id_)
        ids = list(set(ids))  # the same order as transformers' list(set(...)) on the same ints
        if not ids:
            raise InputValueError("At least one target must be provided when passed.")
        return ids

    def preprocess(self, items: list[str], pre: TruncatedPre) -> list[Feature]:
        features = super().preprocess(items, pre)
        for f in features:
            f.context = [i for i, t in enumerate(f.encoding.ids) if t == self.mask_id]
            if not f.context:
                raise InputValueError(
                    f"inputs[{f.owner}] has no mask token ({self.mask_token}) "
                    "(or it was truncated away): nothing to fill"
                )
        return features

    def postprocess(self, features: list[Feature], outputs: Outputs, params: ProposalsPost) -> list[Filled]:
        targets = None if params.target_ids is None else list(params.target_ids)
        return [self.fill(f, outputs["logits"][j], params.top_k, targets) for j, f in enumerate(features)]

    def fill(self, feature: Feature, logits: Array, top_k: int, target_ids: list[int] | None) -> Filled:
        ids = np.array(feature.encoding.ids[: feature.length])
        masks = feature.context
        probs = post.softmax(logits[masks].astype(np.float32))
        if target_ids is not None:
            probs = probs[:, target_ids]
        single = len(masks) == 1
        result: list[list[Proposal]] = []
        for position, row in zip(masks, probs):
            best = np.argsort(-row, kind="stable")[:top_k]
            proposals: list[Proposal] = []
            for p in best:
                token = int(target_ids[p] if target_ids is not None else p)
                tokens = ids.copy()
                tokens[position] = token
                tokens = tokens[tokens != self.encoder.pad_id]
                # With several masks the other masks are kept (special tokens not skipped), as transformers does.
                proposals.append(
                    Proposal(
                        score=float(row[p]),
                        token=token,
                        token_str=self.decode([token]),
                        sequence=self.decode(tokens.tolist(), skip_special_tokens=single),
                    )
                )
            result.append(proposals)
        return result[0] if single else result

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        text: str = self.encoder.tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)
        return clean_up_tokenization(text) if self.clean_up else text

    def finish(self, results: list[Any], single: str | None, params: dict[str, Any]) -> Any:
        # transformers unwraps a list of one text too.
        return results[0] if single or len(results) == 1 else results
