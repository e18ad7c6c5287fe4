"""onnxpipe is typed for its users: a user's mypy reads its annotations (py.typed), so a script that uses a
result's fields as they are checks clean, and one that misreads them is an error."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

USER_SCRIPT = """
import onnxpipe

classifier = onnxpipe.pipeline("sentiment-analysis", model="artifacts/sst2")
for result in classifier.results(["We are very happy to show you the Transformers library."]):
    if isinstance(result, dict):
        label: str = result["label"]
        score: float = result["score"]
        print(label.lower(), score + 1.0)
reader = onnxpipe.pipeline("question-answering", model="artifacts/squad")
answer = reader.results([{"question": "Where?", "context": "In Berlin."}])[0]
if isinstance(answer, dict):
    print(answer["answer"].upper(), answer["start"] + 1)
"""

MISREAD = """
import onnxpipe

classifier = onnxpipe.pipeline("sentiment-analysis", model="artifacts/sst2")
result = classifier.results(["good film"])[0]
if isinstance(result, dict):
    print(result["labels"])
"""


ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def python(tmp_path_factory) -> str:
    """The interpreter whose packages a user's checker reads: this one, where onnxpipe is installed as users
    install it. An editable install (a developer's checkout) is hidden behind setuptools' import hook, which
    no type checker follows: then a bare environment gets onnxpipe installed as a wheel installs it, in its
    site-packages, where mypy reads a package only if it has py.typed."""
    import onnxpipe

    if not Path(onnxpipe.__file__).resolve().is_relative_to(ROOT):
        return sys.executable
    env = tmp_path_factory.mktemp("user-env")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True, timeout=120)
    site = subprocess.run(
        [str(env / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            site,
            str(ROOT),
        ],
        check=True,
        timeout=300,
    )
    return str(env / "bin" / "python")


def mypy(tmp_path: Path, script: str, python: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "user.py").write_text(textwrap.dedent(script))
    # From an empty folder, so that the installed onnxpipe is what the checker finds.
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--python-executable", python, "user.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_users_type_checker_sees_onnxpipes_types(tmp_path, python):
    clean = mypy(tmp_path, USER_SCRIPT, python)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    wrong = mypy(tmp_path, MISREAD, python)
    assert wrong.returncode == 1 and 'TypedDict "LabelScore" has no key "labels"' in wrong.stdout, wrong.stdout
