"""The task registry is the one place a task is named: what the entry points list of tasks is derived from it,
or checked against it here, with a message naming what is missing.

``pipeline()``'s typed overloads (one per task, its aliases in the same ``Literal``) are generated from the
registry, as transformers generates its own (``utils/check_pipeline_typing.py``): after adding a task, run
``python tests/test_registry.py --fix`` to rewrite the block in ``runtime/__init__.py``."""

from __future__ import annotations

import ast
import re
import sys
from collections import defaultdict
from collections.abc import Collection
from pathlib import Path
from typing import get_args, get_origin, is_typeddict

import pytest

ROOT = Path(__file__).resolve().parents[1]
INIT = ROOT / "runtime" / "__init__.py"
BEGIN = (
    "# -- generated from the task registry by `python tests/test_registry.py --fix`: edit runtime/tasks, not this --"
)
END = "# -- end of the generated overloads --"

OVERLOAD = """

@overload
def pipeline(
    task: Literal[{names}],
    model: str | Path | None = None,
    variant: str | None = None,
    *,
    threads: int | None = None,
    batch_size: int | None = None,
    verify: bool = True,
    engine: Engine | None = None,
    **defaults: Any,
) -> {cls}: ...
"""


def generated() -> str:
    """The block between BEGIN and END as the registry makes it: the task classes' imports, one overload a task."""
    from onnxpipe.tasks import ALIASES, SPECS

    modules: dict[str, set[str]] = defaultdict(set)
    for spec in SPECS:
        modules[spec.pipeline.__module__.removeprefix("onnxpipe")].add(spec.pipeline.__name__)
    imports = "".join(f"from {m} import {', '.join(sorted(c))}\n" for m, c in sorted(modules.items()))
    overloads = "".join(
        OVERLOAD.format(
            names=", ".join(f'"{n}"' for n in [spec.name, *(a for a, t in ALIASES.items() if t == spec.name)]),
            cls=spec.pipeline.__name__,
        )
        for spec in SPECS
    )
    return f"{BEGIN}\n{imports}{overloads}\n\n{END}"


def current() -> str:
    text = INIT.read_text(encoding="utf-8")
    match = re.search(re.escape(BEGIN) + ".*?" + re.escape(END), text, re.S)
    assert match, f"{INIT} has lost its generated block ({BEGIN!r} ... {END!r})"
    return match.group(0)


def test_pipeline_overloads_are_the_registrys():
    """Every task and alias has its typed overload returning its own class (a task added to the registry
    without regenerating fails here)."""
    if current() != generated():
        from onnxpipe.tasks import SPECS

        listed = set(re.findall(r'"([a-z-]+)"', current()))
        missing = [spec.name for spec in SPECS if spec.name not in listed]
        raise AssertionError(
            f"runtime/__init__.py's overloads differ from the task registry (missing: {missing or 'none'}); "
            "run `python tests/test_registry.py --fix`"
        )


def test_every_task_runs_by_its_name_and_aliases():
    from onnxpipe.tasks import ALIASES, TASKS, canonical_task

    for name in TASKS:
        assert canonical_task(name) == name
    for alias, task in ALIASES.items():
        assert canonical_task(alias) == task and task in TASKS


# Where code outside runtime/tasks names a task: a scope (function, class body or module) naming two or more
# tasks, or comparing a value with a task name, is an enumeration (a list, choices, an if-chain) that a new
# task would have to be added to by hand. Each one here is allowed for the reason given; anything else fails.
ALLOWED = {
    ("export/embedding.py", "splade_config"): "sentence-transformers' own transformer_task, not an onnxpipe task",
    ("export/load.py", "load_checkpoint"): "export code of one head kind: the base head exports no pooler",
    (
        "runtime/serve/model_routes.py",
        "dispatch",
    ): "TEI's root route: predict/rerank for a classifier, embed for an encoder",
    ("benchmarks/spans.py", "*"): "the bench module the registry names (TaskSpec.bench) for its two span tasks",
    ("benchmarks/serve_load.py", "<module>"): "the two server workloads it loads, each one route of one task",
    ("benchmarks/serve_speed.py", "<module>"): "the two server workloads it times, each one route of one task",
}
# Enumerations still to derive from the registry (outside this helper's files): listed so that they are seen,
# and checked to be still there so that the list shrinks when they go.
PENDING: dict[tuple[str, str], str] = {}  # enumerations still to derive (none now); the test fails once one is gone
SCANNED = ("runtime", "export", "benchmarks")


def task_names_by_scope(path: Path, names: set[str], heads: Collection[str] = ()) -> dict[str, tuple[set[str], bool]]:
    """For each scope of ``path`` (innermost function or class, else ``<module>``): the task names it holds as
    string literals, and whether it compares anything with one or picks by a head of the registry (one of
    ``heads`` imported from onnxpipe.tasks, e.g. ``spec.head is CLASSIFIER``). The generated overloads are
    skipped."""
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text)
    imported = {
        a.asname or a.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[-1] == "tasks"
        for a in node.names
        if a.name in heads
    }
    skip = range(0)
    if path == INIT:
        first = text[: text.index(BEGIN)].count("\n")
        skip = range(first, first + current().count("\n") + 2)
    found: dict[str, tuple[set[str], bool]] = {}

    def visit(node: ast.AST, scope: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = scope
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                inner = child.name
            elif getattr(child, "lineno", 0) - 1 in skip:
                continue
            if isinstance(child, ast.Constant) and child.value in names:
                held, compared = found.get(scope, (set(), False))
                found[scope] = (held | {child.value}, compared)
            if isinstance(child, ast.Name) and child.id in imported:
                held, _ = found.get(scope, (set(), False))
                found[scope] = (held | {f"head {child.id}"}, True)
            if isinstance(child, ast.Compare):
                sides = [n for side in [child.left, *child.comparators] for n in ast.walk(side)]
                if any(isinstance(n, ast.Constant) and n.value in names for n in sides):
                    held, _ = found.get(scope, (set(), False))
                    found[scope] = (held, True)
            visit(child, inner)

    visit(tree, "<module>")
    return found


def enumerations() -> dict[tuple[str, str], str]:
    """Every scope outside runtime/tasks that enumerates tasks, with what it names."""
    import onnxpipe.tasks
    from onnxpipe.tasks import ALIASES, TASKS, HeadSpec

    names = set(TASKS) | set(ALIASES)
    heads = {name for name, value in vars(onnxpipe.tasks).items() if isinstance(value, HeadSpec)}
    seen = {}
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith("runtime/tasks/"):
                continue
            for scope, (held, compared) in task_names_by_scope(path, names, heads).items():
                if len(held) > 1 or compared:
                    seen[(rel, scope)] = ", ".join(sorted(held)) + (" (compared with)" if compared else "")
    return seen


def test_no_task_is_enumerated_outside_the_registry():
    """A list, a dict or an if-chain over task names outside runtime/tasks is one a new task is missing from;
    it must read the registry instead (or be allowed here, with its reason)."""
    seen = enumerations()
    unexplained = {
        where: held
        for where, held in seen.items()
        if where not in ALLOWED and (where[0], "*") not in ALLOWED and where not in PENDING
    }
    assert not unexplained, (
        "task names enumerated outside the registry (derive them from onnxpipe.tasks): "
        + "; ".join(f"{file} {scope}: {held}" for (file, scope), held in sorted(unexplained.items()))
    )
    gone = [where for where in PENDING if where not in seen]
    assert not gone, f"no longer enumerating tasks, remove from PENDING: {gone}"


def test_the_scan_finds_an_enumeration(tmp_path, monkeypatch):
    """The check above fails on a CLI-like choices list and on an if-chain (it could not pass by finding nothing)."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        'def parser(p):\n    p.add_argument("--task", choices=["fill-mask", "ner"])\n'
        'def run(task):\n    return 1 if task == "fill-mask" else 2\n'
        'def one(pipeline):\n    return pipeline("fill-mask")\n'
        "from onnxpipe.tasks import BASE\ndef route(spec):\n    return spec.head is BASE\n",
        encoding="utf-8",
    )
    found = task_names_by_scope(probe, {"fill-mask", "ner"}, {"BASE"})
    assert found == {
        "parser": ({"fill-mask", "ner"}, False),
        "run": ({"fill-mask"}, True),
        "one": ({"fill-mask"}, False),
        "route": ({"head BASE"}, True),
    }


def test_every_task_reaches_the_entry_points():
    """What run, score and the default models read from a task's spec is there for every task, or the
    failure names the task: its own result key (run's JSON), its score columns, and a builder for its
    default model."""
    from onnxpipe.default import BUILDERS
    from onnxpipe.pipeline import Pipeline
    from onnxpipe.tasks import SPECS

    def merged(cls: type) -> bool:  # a result that is a TypedDict is merged into run's row: it needs no key
        bases = [b for c in cls.__mro__ for b in getattr(c, "__orig_bases__", ()) if get_origin(b) is Pipeline]
        return bool(bases) and is_typeddict(get_args(bases[0])[2])

    keyless = [s.name for s in SPECS if s.pipeline.result_key == Pipeline.result_key and not merged(s.pipeline)]
    assert not keyless, f"no result_key of its own (run's JSON would say 'result'): {keyless}"
    unscored = [s.name for s in SPECS if s.score_columns is None]
    assert not unscored, f"no score_columns (`onnxpipe score` refuses them): {unscored}"
    unbuilt = [s.name for s in SPECS if s.default_model and s.default_model not in BUILDERS]
    assert not unbuilt, f"a default_model that onnxpipe.default.BUILDERS cannot build: {unbuilt}"


def test_kinds_the_registry_names_are_the_code_s():
    """Every kind of validation samples has its samples in export/validate.py, and a spec naming an unknown
    kind is refused when the registry is built."""
    pytest.importorskip("torch")
    from onnxpipe.export.validate import SAMPLE_SETS
    from onnxpipe.tasks import SAMPLE_KINDS, HeadSpec

    assert sorted(SAMPLE_SETS) == sorted(SAMPLE_KINDS)
    with pytest.raises(ValueError, match="samples 'pairs' is not one of"):
        HeadSpec("x", "AutoModel", "feature-extraction", ("logits",), "pairs")


if __name__ == "__main__" and sys.argv[1:] == ["--fix"]:
    text = INIT.read_text(encoding="utf-8")
    INIT.write_text(text.replace(current(), generated()), encoding="utf-8")
    print(f"rewrote the overloads in {INIT}")
