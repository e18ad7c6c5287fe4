"""The optional fused variant of an exported graph (onnxruntime's transformer fusions); int8 is quantize.py.

File names follow optimum's conventions (model.onnx, model_optimized.onnx, model_quantized.onnx)
so that ``ORTModelFor*.from_pretrained(folder, file_name=...)`` loads the same folder.
"""

from __future__ import annotations

from pathlib import Path

FILES = {"fp32": "model.onnx", "optimized": "model_optimized.onnx", "int8": "model_quantized.onnx"}


class UnsupportedArchitecture(Exception):
    pass


def optimize_graph(src: Path, dst: Path, config) -> dict[str, int]:
    """Fuse attention, GELU, embeddings; returns the fused-operator counts.

    Residual adds and layer norms stay apart (Add + LayerNormalization), and the runtime's sessions keep ORT
    from fusing them at load (``session.UNFUSED``): onnxruntime 1.32's CPU ``SkipLayerNormalization`` is a
    scalar loop per row, 3.9x slower than Add + LayerNormalization on MiniLM's shapes (912 vs 236 us at
    32 x 25 x 384, 2 threads, AVX2), and 12% of the int8 graph's time when fused."""
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model
    from optimum.onnxruntime.utils import ORTConfigManager

    try:
        ort_type = ORTConfigManager.get_model_ort_type(config.model_type)
    except (KeyError, NotImplementedError) as e:
        raise UnsupportedArchitecture(f"onnxruntime has no transformer fusions for {config.model_type!r}") from e
    options = FusionOptions(ort_type)
    options.enable_skip_layer_norm = False
    model = optimize_model(
        str(src),
        model_type=ort_type,
        num_heads=config.num_attention_heads,
        hidden_size=config.hidden_size,
        use_gpu=False,
        optimization_options=options,
    )
    model.save_model_to_file(str(dst))
    return {k: int(v) for k, v in model.get_fused_operator_statistics().items() if v}
