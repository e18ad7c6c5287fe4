"""The README's code blocks, run: a README that drifts from the code fails here.

A block runs as written unless the line before its fence says otherwise, ``<!-- readme-test: KIND -->``:
  setup     the two set-up commands: the test command is what .ci/run runs; the main job's onnxpipe commands run here
  output    a printed sample: compared with what the command prints now
  synopsis  a usage summary: every command and option it names must exist
  hub       needs a model hub (none is reachable where the tests run)
  long      a benchmark taking minutes on SST-2 (tests/benchmarks cover the harness on tiny models)
Paths a block names (``artifacts/my-model``, ``s3://bucket/...``) are stood in for by tiny models and temp
folders; names it leaves undefined (``texts``, ``long_text``) are given plain values.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
KINDS = {"setup", "output", "synopsis", "hub", "long"}
BIN = Path(sys.executable).parent


def blocks() -> list[tuple[str, str, str]]:
    """(kind, language, code) of every fenced block; kind "run" where no marker says otherwise."""
    out, lines, i = [], README.splitlines(), 0
    while i < len(lines):
        if lines[i].startswith("```"):
            m = re.fullmatch(r"<!-- readme-test: (\w+) -->", lines[i - 1].strip()) if i else None
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            out.append((m.group(1) if m else "run", lines[i][3:].strip(), "\n".join(lines[i + 1 : end])))
            i = end
        i += 1
    return out


BLOCKS = blocks()


def of(kind: str) -> list[str]:
    return [code for k, _, code in BLOCKS if k == kind]


def test_every_block_is_run_or_says_why_not():
    assert len(BLOCKS) >= 15
    assert {k for k, _, _ in BLOCKS} <= KINDS | {"run"}
    assert len(of("hub")) == 1 and len(of("setup")) == 2
    run = [(lang, code) for k, lang, code in BLOCKS if k == "run"]
    assert len(run) >= 7
    for lang, code in run:  # each is one that a test below runs
        assert lang == "python" or any(c in code for c in ("onnxpipe score", "onnxpipe serve", "curl -s")), code


def env(cache: Path) -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "ONNXPIPE_CACHE": str(cache)}


def shell(code: str, cwd: Path, cache: Path) -> str:
    code = code.replace(".venv/bin/", f"{BIN}/")
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", code], cwd=cwd, env=env(cache), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"{code}\n--- stderr:\n{done.stderr[-3000:]}"
    return done.stdout


# -- set-up ---------------------------------------------------------------------------------------------
def test_setup_commands_are_what_ci_runs_and_the_main_job_works(real_default, default_cache, tmp_path):
    main, tests = of("setup")
    assert tests.strip() in (ROOT / ".ci" / "run").read_text()  # CI runs the README's test command itself
    install, *commands = [c.strip() for c in main.replace("\\\n", " ").split("&&")]
    assert install == "./setup.sh" and (ROOT / "setup.sh").is_file()
    out = shell(" && ".join(commands), tmp_path, default_cache)
    assert "label  POSITIVE" in out
    assert [line.split('"label": ')[1][1:9] for line in out.splitlines() if '"label"' in line][-2:] == [
        "POSITIVE",
        "NEGATIVE",
    ]
    # The printed sample: the same stages, token ids and answer as the command prints now.
    (sample,) = [block for block in of("output") if block.startswith("1. load")]
    for line in sample.splitlines():
        if line.strip().startswith(("ids ", "tokens ", "label ")):
            assert line.strip() in out
    assert sample.splitlines()[-1].split(", ")[0] in out  # [{"label": "POSITIVE"


def test_synopsis_names_only_commands_and_options_that_exist(tmp_path, default_cache):
    (synopsis,) = of("synopsis")
    for line in synopsis.splitlines():
        words = shlex.split(line.split("#")[0].replace("[", " ").replace("]", " ").replace("|", " "))
        if words[:1] != ["onnxpipe"] or words[1].startswith("-"):
            continue
        help_text = shell(f"onnxpipe {words[1]} --help", tmp_path, default_cache)
        for option in (w for w in words[2:] if w.startswith("--")):
            assert option in help_text, f"{line}: {option} is not an option of onnxpipe {words[1]}"


# -- Python blocks ----------------------------------------------------------------------------------------
@pytest.fixture
def stand_ins(artifact, real_default, embeddings_default, tmp_path, monkeypatch):
    """The README's artifact paths as tiny models in a temp folder; the defaults in the shared cache."""
    folder = tmp_path / "artifacts"
    folder.mkdir()
    for name, (arch, head, optimize) in {
        "my-model": ("bert", "single", False),
        "bert-ner": ("bert", "ner", False),
        "roberta-squad2": ("roberta", "qa", False),
    }.items():
        (folder / name).symlink_to(artifact(arch, head, optimize))
    monkeypatch.chdir(tmp_path)
    return tmp_path


NAMES = {
    "texts": ["great film", "awful film", "a film"],
    "long_text": {"text": "what is it about?", "text_pair": "a long passage about many things. " * 200},
    "stream": iter(["great film", "awful film"]),
    "long_report": "Ada Lovelace wrote in London about the engine. " * 120,
    "long_document": "I live in Berlin and work in Paris. " * 150,
}


@pytest.mark.parametrize("index", [i for i, (k, lang, _) in enumerate(BLOCKS) if k == "run" and lang == "python"])
def test_python_block_runs(index, stand_ins, real_default):
    code = BLOCKS[index][2]
    if "import ray" in code:
        pytest.importorskip("ray")
        import pandas as pd

        (stand_ins / "reviews").mkdir()
        pd.DataFrame({"text": ["great film", "awful film"]}).to_parquet(stand_ins / "reviews" / "part.parquet")
        code = code.replace("s3://bucket/reviews/", str(stand_ins / "reviews"))
        code = code.replace("s3://bucket/scored/", str(stand_ins / "scored"))
        code = code.replace("/shared/artifacts/minilm-sst2", str(real_default))
    code = code.replace("stride=64", "stride=16")  # the stand-in NER model has 64 positions, a real BERT 512
    scope = dict(NAMES, stream=iter(["great film", "awful film"]))
    exec(compile(code, f"README.md block {index}", "exec"), scope)
    if "import ray" in code:
        scored = pd.read_parquet(stand_ins / "scored")
        assert sorted(scored["label"]) == ["NEGATIVE", "POSITIVE"]
    if "classifier" in scope:  # the quick tour: the seed sentence is positive, as the README prints
        assert (
            scope["classifier"]("We are very happy to show you the 🤗 Transformers library.")[0]["label"] == "POSITIVE"
        )


# -- shell blocks -------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_score_block_runs(stand_ins, default_cache):
    (code,) = [c for k, _, c in BLOCKS if k == "run" and "onnxpipe score" in c]
    pytest.importorskip("ray")
    (stand_ins / "reviews.csv").write_text("text\ngreat film\nawful film\n")
    lines = [line for line in code.splitlines() if "pip install" not in line]
    shell("\n".join(lines), stand_ins, default_cache)
    import pandas as pd

    assert sorted(pd.read_parquet(stand_ins / "scored.parquet")["label"]) == ["NEGATIVE", "POSITIVE"]


def test_serving_blocks_run_against_a_real_server(stand_ins, default_cache, embeddings_default):
    import json

    start, routes = [c for k, _, c in BLOCKS if k == "run" and ("onnxpipe serve" in c or "curl" in c)]
    assert "pip install '.[serve]'" in start
    port = free_port()
    commands = [line for line in start.splitlines() if "pip install" not in line]
    serve = re.sub(r" \[[^\]]*\]", "", commands.pop()).replace("--port 8080", f"--port {port}")
    shell("\n".join(commands), stand_ins, default_cache)  # the two `export --default` copies
    server = subprocess.Popen(
        shlex.split(serve.split("#")[0]), cwd=stand_ins, env=env(default_cache), stderr=subprocess.PIPE, text=True
    )
    try:
        assert server.stderr is not None
        for line in server.stderr:
            if "onnxpipe serve: ready" in line:
                break
            assert "could not load" not in line, line
        for line in routes.replace("curl -s ", "curl -sSf ").replace(":8080", f":{port}").splitlines():
            for part in line.split("; "):
                out = shell(part, stand_ins, default_cache)
                if "/metrics" not in part:
                    json.loads(out)  # every route answers JSON, 2xx (curl -f fails on 4xx/5xx)
        first = json.loads(shell(routes.splitlines()[0].replace(":8080", f":{port}"), stand_ins, default_cache))
        assert [[d["label"] for d in r] for r in first] == [["POSITIVE", "NEGATIVE"], ["NEGATIVE", "POSITIVE"]]
    finally:
        server.terminate()
        server.wait(30)
