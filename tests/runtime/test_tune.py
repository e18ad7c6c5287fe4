"""Which variant runs on this machine: the choice logic on injected timings (no wall time is asserted),
its cache, its override, and where it is reported."""

from __future__ import annotations


import pytest

import onnxpipe
from onnxpipe import tune


def timings(**per: tuple[float, float]) -> tune.Timings:
    return {name: {"batch_1": b1, "batch_8": b8} for name, (b1, b8) in per.items()}


def exact(name: str) -> bool:
    return name != "int8"


def test_int8_runs_only_where_it_is_faster_by_the_margin_at_every_batch_size():
    # 0.84x the fused graph's time at both sizes: it pays.
    assert tune.decide(timings(fp32=(12, 40), optimized=(10, 30), int8=(8.4, 25.2)), exact)[0] == "int8"
    # Faster, but not by the margin at batch 1 (0.9x): the exact graph runs.
    variant, why = tune.decide(timings(fp32=(12, 40), optimized=(10, 30), int8=(9, 20)), exact)
    assert variant == "optimized" and "1.18x" in why and "int8 batch 1 9.00 ms" in why
    # Faster at batch 1 only: still not.
    assert tune.decide(timings(optimized=(10, 30), int8=(5, 29)), exact)[0] == "optimized"
    # Slower: never.
    assert tune.decide(timings(optimized=(10, 30), int8=(11, 31)), exact)[0] == "optimized"


def test_among_exact_variants_the_faster_one_runs():
    assert tune.decide(timings(fp32=(9, 28), optimized=(10, 30)), exact)[0] == "fp32"
    assert tune.decide(timings(fp32=(12, 40), optimized=(10, 30)), exact)[0] == "optimized"


@pytest.fixture
def quantized(artifact):
    return onnxpipe.load_artifact(artifact("bert", "single", optimize=True, quantize="int8"))


def test_choice_is_timed_once_then_read_from_the_cache(quantized, tmp_path, monkeypatch):
    monkeypatch.delenv(tune.TUNE_ENV, raising=False)
    calls = []

    def fake(art, names, threads):
        calls.append((sorted(names), threads))
        return timings(fp32=(2, 6), optimized=(1.5, 5), int8=(1.0, 3.0))

    first = tune.choose(quantized, 2, cache=tmp_path, timer=fake)
    assert calls == [(["fp32", "int8", "optimized"], 2)]
    assert first.variant == "int8" and first.reason.startswith("timed on this machine: int8 is >= 1.5")

    def no_timing(*a):
        raise AssertionError("timed again although the choice is cached")

    again = tune.choose(quantized, 2, cache=tmp_path, timer=no_timing)
    assert again == first
    # Another thread count is another key: timed again.
    assert tune.choose(quantized, 1, cache=tmp_path, timer=fake).variant == "int8" and len(calls) == 2
    # A corrupt cache file is timed again and rewritten, never an error.
    tune.cache_file(quantized, 2, tmp_path).write_text("{not json")
    assert tune.choose(quantized, 2, cache=tmp_path, timer=fake).variant == "int8" and len(calls) == 3


def test_the_real_timer_times_every_batch_invariant_variant(quantized, tmp_path, monkeypatch):
    monkeypatch.delenv(tune.TUNE_ENV, raising=False)
    choice = tune.choose(quantized, 1, cache=tmp_path)
    assert set(choice.timings) == {"fp32", "optimized", "int8"}
    assert all(set(t) == {"batch_1", "batch_8"} and min(t.values()) > 0 for t in choice.timings.values())
    assert choice.variant in choice.timings and "onnxruntime" in choice.machine


def test_the_variants_take_turns_run_by_run(quantized, monkeypatch):
    """Load from outside comes in bursts: timed in windows of their own, one variant could take a whole burst and
    lose a choice it would win, so the timer alternates the variants at every run, at each batch size, on
    sessions whose workers stop spinning as a run returns (one left spinning takes a core from the next run)."""
    import onnxpipe.session

    calls: list[tuple[str, int, int]] = []
    spins: list[tuple[int, bool | None, bool]] = []

    class Recording:
        def __init__(self, path, threads, spin=None, spin_stop=False):
            self.name, self.threads = path.name, threads
            spins.append((threads, spin, spin_stop))

        def run(self, feed):
            calls.append((self.name, len(feed["input_ids"]), self.threads))

    monkeypatch.setattr(onnxpipe.session, "Session", Recording)
    names = ["fp32", "optimized", "int8"]
    files = [quantized.variant_file(n).name for n in names]
    for threads in (1, 2):
        calls.clear()
        spins.clear()
        timed = tune.measure(quantized, names, threads, rounds=3, seconds=0.01)
        # Sessions timed in turns spin within a run only: one's idle workers would hold a core through the next run.
        assert all(spin and stop for t, spin, stop in spins if t > 1) and len(spins) == (3 if threads == 1 else 6)
        assert set(timed) == set(names) and all(set(t) == {"batch_1", f"batch_{tune.BATCH}"} for t in timed.values())
        # batch 1 on the pipeline's threads, batch 8 on one thread, as each stream runs a batch
        runs = {1: threads, tune.BATCH: 1}
        assert calls[:6] == [(f, b, runs[b]) for b in (1, tune.BATCH) for f in files]  # untimed first runs
        for size in (1, tune.BATCH):
            order = [(f, t) for f, b, t in calls[6:] if b == size]
            assert len(order) >= 3 * len(files) and len(order) % len(files) == 0
            assert order == [(f, runs[size]) for f in files] * (len(order) // len(files))  # fp32, optimized, int8...


def test_a_variant_that_moves_with_the_batch_is_never_a_candidate(artifact):
    dynamic = onnxpipe.load_artifact(artifact("bert", "single", quantize="dynamic"))
    assert dynamic.variants["int8"]["quantization"]["batch_invariant"] is False
    assert tune.candidates(dynamic) == ["fp32"]


def test_pipeline_runs_the_chosen_variant_and_says_why(quantized, tmp_path, monkeypatch, capsys):
    from onnxpipe.explain import explain

    monkeypatch.delenv(tune.TUNE_ENV, raising=False)
    monkeypatch.setenv("ONNXPIPE_CACHE", str(tmp_path))
    monkeypatch.setattr(
        tune, "measure", lambda art, names, threads: timings(fp32=(2, 6), optimized=(1, 3), int8=(0.95, 2.9))
    )
    pipe = onnxpipe.pipeline(model=quantized.path)
    assert pipe.variant == "optimized" and pipe.model_path.name == "model_optimized.onnx"
    explain(pipe, "a fine film", load_seconds=0.1)
    assert "why optimized: timed on this machine: optimized" in capsys.readouterr().out
    named = onnxpipe.pipeline(model=quantized.path, variant="int8")
    assert named.variant == "int8" and named.choice.reason == "named by the caller (variant=)"
    with pytest.raises(ValueError, match="unknown variant 'int4'.*fp32, int8, optimized"):
        onnxpipe.pipeline(model=quantized.path, variant="int4")


def test_without_timing_the_manifest_default_runs(quantized, monkeypatch):
    monkeypatch.setenv(tune.TUNE_ENV, "0")
    pipe = onnxpipe.pipeline(model=quantized.path)
    assert pipe.variant == quantized.default_variant == "int8" and "not timed" in pipe.choice.reason
