"""The one batching policy: runs cut where padding plus per-run overhead cost least."""

import itertools
import random

import pytest

from onnxpipe.batching import MAX_RUN_AREA, RUN_OVERHEAD, chunks


def cost(runs: list[list[int]], lengths: list[int], overhead: float) -> float:
    return sum(overhead + len(r) * max(lengths[i] for i in r) for r in runs)


def least_by_brute_force(lengths: list[int], size: int, overhead: float) -> float:
    """Every way to cut the sorted lengths into consecutive runs of at most ``size``: the cheapest's cost."""
    s = sorted(lengths)
    best = float("inf")
    for cuts in itertools.product((False, True), repeat=len(s) - 1):
        runs, run = [], [0]
        for k, cut in enumerate(cuts, start=1):
            if cut:
                runs.append(run)
                run = []
            run.append(k)
        runs.append(run)
        if all(len(r) <= size for r in runs):
            best = min(best, cost(runs, s, overhead))
    return best


@pytest.mark.parametrize("seed", range(40))
def test_runs_cost_the_least_any_cut_can(seed):
    rng = random.Random(seed)
    lengths = [rng.choice([rng.randint(3, 12), rng.randint(20, 64)]) for _ in range(rng.randint(1, 10))]
    size, overhead = rng.choice([2, 3, 4, 32]), rng.choice([0.0, 4.0, RUN_OVERHEAD, 64.0])
    runs = chunks(lengths, size, overhead)
    assert sorted(i for r in runs for i in r) == list(range(len(lengths)))  # each feature exactly once
    assert all(1 <= len(r) <= size for r in runs)
    assert [max(lengths[i] for i in r) for r in runs] == sorted(max(lengths[i] for i in r) for r in runs)
    assert cost(runs, lengths, overhead) == least_by_brute_force(lengths, size, overhead)


def test_a_run_is_worth_its_overhead_in_padding():
    lengths = [5, 60, 7, 6, 58, 30, 8, 61, 29, 5]
    got = [[lengths[i] for i in r] for r in chunks(lengths, size=4)]
    # four a run: the five short texts take two runs (66 token-equivalents, as [5, 5] + [6, 7, 8]); 29 and 30 stay
    # apart from 58-61, where padding would cost 60 tokens against one run's 16
    assert got == [[5, 5, 6], [7, 8], [29, 30], [58, 60, 61]]
    assert cost(chunks(lengths, size=4, overhead=0), lengths, 0) == sum(lengths)  # no overhead: no padding at all
    assert len(chunks(lengths, size=4, overhead=float("inf"))) == 3  # fewest runs: validation pads on purpose


def test_long_inputs_run_in_smaller_graph_runs():
    """A run's attention area (count x length²) is bounded, so 32 inputs of 8k tokens do not ask for tens of GB
    at once; short texts batch as before."""
    lengths = [8192] * 3 + [4096] * 5 + [100] * 40
    runs = chunks(lengths, size=32)
    assert sorted(i for run in runs for i in run) == list(range(len(lengths)))
    assert [len(r) for r in runs] == [32, 8, 4, 1, 1, 1, 1]
    assert all(len(r) * max(lengths[i] for i in r) ** 2 <= MAX_RUN_AREA for r in runs)
