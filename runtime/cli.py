"""The ``onnxpipe`` command: export, run, explain, bench.

argparse (standard library) rather than click/typer: the runtime's install stays at three
dependencies, and five sub-commands need nothing more.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .artifact import MANIFEST
from .errors import OnnxPipeError


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:  # the harness parses its own options
        return run_guarded(lambda: cmd_bench(argparse.Namespace(rest=argv[1:])))
    parser = build_parser()
    # Texts may come after options (`run ART --variant fp32 "text"`); argparse leaves those over.
    args, extra = parser.parse_known_args(argv)
    if extra:
        if args.command not in ("run", "explain") or any(x.startswith("-") for x in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.args += extra
    return run_guarded(lambda: args.func(args))


def run_guarded(command) -> int:
    try:
        return command() or 0
    # Errors the user can act on get one line; anything else is a bug and keeps its traceback.
    except (OnnxPipeError, ValueError, TypeError, OSError, RuntimeError) as e:
        print(f"onnxpipe: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="onnxpipe", description="Hugging Face pipelines on ONNX Runtime.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("export", help="export a checkpoint (hub id or folder) to an artifact folder")
    p.add_argument("source", nargs="?", help="hub id or local checkpoint folder")
    p.add_argument("outdir", nargs="?", type=Path, help="artifact folder to write")
    p.add_argument("--default", action="store_true", help="build the embedded default sentiment model")
    p.add_argument("--task", default="text-classification")
    p.add_argument("--optimize", action="store_true", help="add onnxruntime's fused graph (model_optimized.onnx)")
    p.add_argument("--quantize", choices=["int8"], help="add a dynamic int8 graph (model_quantized.onnx)")
    p.add_argument("--revision", help="hub revision (branch, tag or commit)")
    p.add_argument("--opset", type=int)
    p.add_argument("--overwrite", action="store_true", help="replace OUTDIR if it exists")
    p.set_defaults(func=cmd_export)

    for name, helptext in (("run", "classify texts (arguments, or lines on stdin); JSON lines out"),
                           ("explain", "show each of the four stages for one text")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("args", nargs="*", metavar="[ARTIFACT] TEXT",
                       help="an artifact folder (default: the embedded default model), then texts")
        p.add_argument("--variant", help="fp32, optimized or int8 (default: the artifact's default)")
        p.add_argument("--threads", type=int)
        if name == "run":
            p.add_argument("--top-k", type=int, help="return the k best labels instead of the best one")
            p.add_argument("--batch-size", type=int, default=32)
        p.set_defaults(func=cmd_run if name == "run" else cmd_explain)

    # Listed for --help only: main() hands `bench ...` to the harness's own parser.
    sub.add_parser("bench", help="benchmark speed and accuracy against PyTorch, optimum and peers "
                                 "(onnxpipe bench --help)")
    return parser


def split_artifact(args: list[str]) -> tuple[str | None, list[str]]:
    """``[ARTIFACT] TEXT...``: the first argument is the artifact when it is a folder."""
    if args and Path(args[0]).is_dir():
        return args[0], args[1:]
    return None, args


def load(model: str | None, variant: str | None, threads: int | None, **kw):
    from . import pipeline

    return pipeline("text-classification" if model is None else None, model=model, variant=variant,
                    threads=threads, **kw)


def cmd_export(a: argparse.Namespace) -> int:
    log = lambda msg: print(f"onnxpipe: {msg}", file=sys.stderr, flush=True)  # noqa: E731
    if a.default:
        if a.source or a.outdir:
            raise ValueError("--default takes no SOURCE or OUTDIR")
        from .default import default_artifact_dir
        from onnxpipe.export.default_model.build import build_default

        path = default_artifact_dir()
        if (path / MANIFEST).is_file() and not a.overwrite:
            log(f"the default model is already built: {path} (--overwrite rebuilds it)")
        else:
            build_default(path, log=log, overwrite=a.overwrite)
        print(path)
        return 0
    if not (a.source and a.outdir):
        raise ValueError("export needs SOURCE and OUTDIR (or --default)")
    from onnxpipe.export import export

    print(export(a.source, a.outdir, a.task, optimize=a.optimize, quantize=a.quantize, revision=a.revision,
                 opset=a.opset, overwrite=a.overwrite, log=log))
    return 0


def cmd_run(a: argparse.Namespace) -> int:
    model, texts = split_artifact(a.args)
    source = texts or (line.rstrip("\n") for line in sys.stdin if line.strip())
    pipe = None
    params = {} if a.top_k is None else {"top_k": a.top_k}
    # Chunks, printed as they finish: a long stdin streams instead of waiting for its end, and
    # results already printed survive a failure further down.
    for chunk in chunked(source, RUN_CHUNK):
        pipe = pipe or load(model, a.variant, a.threads, batch_size=a.batch_size)
        for text, result in zip(chunk, pipe(chunk, **params)):
            row = {"text": text, **result} if isinstance(result, dict) else {"text": text, "labels": result}
            print(json.dumps(row, ensure_ascii=False))
        sys.stdout.flush()
    if pipe is None:
        raise ValueError("no text given: pass texts as arguments or lines on stdin")
    return 0


RUN_CHUNK = 1024


def chunked(items, size: int):
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def cmd_explain(a: argparse.Namespace) -> int:
    from .explain import explain

    model, texts = split_artifact(a.args)
    if len(texts) != 1:
        raise ValueError("explain takes exactly one text")
    t0 = time.perf_counter()
    pipe = load(model, a.variant, a.threads)
    explain(pipe, texts[0], load_seconds=time.perf_counter() - t0)
    return 0


def cmd_bench(a: argparse.Namespace) -> int:
    try:
        from onnxpipe.bench.cli import main as bench_main
    except ImportError as e:
        raise OnnxPipeError(f"the benchmark needs the bench extra (missing: {e.name}): "
                            "pip install 'onnxpipe[bench]'") from e
    return bench_main(a.rest)


if __name__ == "__main__":
    sys.exit(main())
