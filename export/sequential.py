"""Sequential GPTQ: each activation's moments read off the partly quantized graph, not the float one.

GPTQ (:mod:`.gptq`) rounds a layer's weights to keep ``x Ŵ`` close to ``x W`` for the inputs ``x`` it is shown.
Fed the float graph's inputs, every layer is fitted to inputs it never sees once the layers before it are int8;
fed the quantized graph's own inputs (as the GPTQ paper's reference code does, layer by layer), each layer's
rounding is fitted to the inputs it will actually get, so it can absorb part of the error arriving from above.
Activations are taken in graph order: for the i-th, the graph with the first i-1 quantized (with the moments
already gathered) runs the calibration text once, and that activation's moments are read off it.
"""

from __future__ import annotations

from collections.abc import Sequence

from .gptq import Moments


def sequential_moments(
    model, feeds: Sequence[dict], exclude: frozenset[str] = frozenset(), target: bool = False, **options
) -> dict[str, Moments]:
    """Per quantized activation of ``model`` (fused fp32 ModelProto, left unchanged), its moments on ``feeds`` as
    the graph with every earlier activation's products already int8 (``quantize_rowwise(**options)``) gives it.
    ``target``: also pair them with the float graph's rows for the same tokens (:func:`.gptq.toward_float`)."""
    import onnx

    from .rowwise import quantize_rowwise, unfuse_attention, weight_groups
    from .smoothing import statistics

    plain = onnx.ModelProto.FromString(model.SerializeToString())
    unfuse_attention(plain, set(exclude))
    order = [(x, [n.name for n in mms]) for x, mms in weight_groups(plain, exclude).items()]
    got: dict[str, Moments] = {}
    cache = {"stats": statistics(plain, [x for x, _ in order], list(feeds))}  # the float graph's: read once
    for i, (x, _) in enumerate(order):
        partly = onnx.ModelProto.FromString(model.SerializeToString())
        if i:  # later products stay float: they are not yet rounded when x is read
            later = {name for _, names in order[i:] for name in names}
            quantize_rowwise(partly, list(feeds), exclude=set(exclude) | later, moments=got, cache=cache, **options)
        got[x] = _paired(partly, plain, x, feeds) if target else statistics(partly, [x], list(feeds))[x][1]
    return got


def _paired(partly, plain, x: str, feeds: Sequence[dict]) -> Moments:
    """``x``'s moments in ``partly``, with their cross moment against ``plain``'s ``x`` on the same (unpadded) tokens."""
    from .activations import run_with_outputs

    out = Moments()
    for feed, (mine,), (ref,) in zip(feeds, run_with_outputs(partly, [x], feeds), run_with_outputs(plain, [x], feeds)):
        keep = feed.get("attention_mask")
        keep = keep if keep is not None and keep.size * mine.shape[-1] == mine.size else None
        rows = mine.reshape(-1, mine.shape[-1])
        out.add(rows, keep)
        out.pair(rows, ref, keep)
    return out
