"""The task registry is the one place a task is named: what the entry points list of tasks is derived from it,
or checked against it here, with a message naming what is missing.

``pipeline()``'s typed overloads (one per task, its aliases in the same ``Literal``) are generated from the
registry, as transformers generates its own (``utils/check_pipeline_typing.py``): after adding a task, run
``python tests/test_registry.py --fix`` to rewrite the block in ``runtime/__init__.py``."""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from pathlib import Path

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


if __name__ == "__main__" and sys.argv[1:] == ["--fix"]:
    text = INIT.read_text(encoding="utf-8")
    INIT.write_text(text.replace(current(), generated()), encoding="utf-8")
    print(f"rewrote the overloads in {INIT}")
