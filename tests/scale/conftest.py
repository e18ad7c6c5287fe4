"""Shared by the scale tests: one 2,000-row corpus with every task's input columns, each task's tiny
artifact, and one Ray and one Spark per test session (local, 2 CPUs), started on first use."""

from __future__ import annotations

import os
import random
import shutil

import pyarrow as pa
import pytest

ROWS = 2000
WORDS = [
    "we",
    "are",
    "very",
    "happy",
    "to",
    "show",
    "you",
    "the",
    "transformers",
    "library",
    "this",
    "movie",
    "was",
    "terrible",
    "boring",
    "and",
    "far",
    "too",
    "long",
    "a",
    "beautiful",
    "moving",
    "film",
    "with",
    "great",
    "cast",
    "i",
    "hate",
    "it",
    "love",
    "never",
    "again",
    "always",
    "yes",
    "food",
    "good",
    "but",
    "service",
    "bad",
    "très",
    "émouvant",
    "à",
    "voir",
    "absolument",
    "这部电影非常好看",
]
HEADS = {  # task → the tiny head it runs on
    "text-classification": "single",
    "zero-shot-classification": "nli",
    "feature-extraction": "base",
    "sentence-embeddings": "base",
    "fill-mask": "mlm",
    "token-classification": "ner",
    "question-answering": "qa",
}


@pytest.fixture(scope="session")
def corpus() -> pa.Table:
    """2,000 rows: short texts (every 97th one past the tiny models' 64-token limit), a pair, a question,
    and a text with one or two [MASK]s."""
    rng = random.Random(26)
    texts, pairs, questions, masked = [], [], [], []
    for i in range(ROWS):
        words = rng.choices(WORDS, k=80 if i % 97 == 0 else rng.randint(2, 12))
        texts.append(" ".join(words))
        pairs.append(" ".join(rng.choices(WORDS, k=rng.randint(2, 6))))
        questions.append(" ".join(rng.choices(WORDS, k=rng.randint(2, 5))) + "?")
        cut = rng.randrange(min(len(words), 20))  # within the model's limit: the mask is not cut away
        mask = ["[MASK]"] * (2 if i % 5 == 0 else 1)
        masked.append(" ".join(words[:cut] + mask + words[cut:]))
    return pa.table({"id": list(range(ROWS)), "text": texts, "pair": pairs, "question": questions, "masked": masked})


@pytest.fixture(scope="session")
def task_artifact(artifact, splade_distilbert):
    return lambda task: splade_distilbert if task == "sparse-embeddings" else artifact("bert", HEADS[task])


@pytest.fixture(scope="session")
def ray_session():
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def spark_session():
    pytest.importorskip("pyspark")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("Spark needs a Java runtime (apt-get install openjdk-17-jre-headless)")
    from onnxpipe.scale.spark import session

    spark = session("local[2]")
    yield spark
    spark.stop()
