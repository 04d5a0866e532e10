"""Interleaved latency measurement: the only fair way to compare models on a noisy machine.

Each round runs every model once, in turn, so background load hits all of them alike;
results are medians and percentiles, and callers compare them as ratios. A model that runs
right after another is slow for its first few calls (its weights and code are out of the
caches), so each timed call is preceded by ``SETTLE_CALLS`` untimed ones: the figures are a
model's steady latency, as it runs in a deployment, not the cost of switching models.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

MIN_ROUNDS = 5
#: untimed calls before a timed one, when several models take turns: measured on a 2-core EPYC
#: (GhostNet 0.5× at 112², batch 1, three runtimes in turn), the 1st-5th calls after a switch took
#: 3.9, 2.1, 1.4, 1.1, 1.0× the steady latency on OpenVINO, 2.6, 1.7, 1.3, 1.1, 1.0× on ONNX
#: Runtime and 2.1, 1.2, 1.0× on LiteRT
SETTLE_CALLS = 4


def interleaved_samples(
    runners: dict[str, Callable[[], object]],
    iterations: int | None = None,
    seconds: float | None = None,
    warmup: int = 3,
) -> dict[str, list[float]]:
    """Per-run latencies (ms) of each zero-argument ``runner``, round-robin.

    Runs ``iterations`` rounds, or rounds until ``seconds`` have passed (at least
    ``MIN_ROUNDS``); ``warmup`` untimed rounds first.
    """
    for _ in range(warmup):
        for run in runners.values():
            run()
    samples: dict[str, list[float]] = {name: [] for name in runners}
    settle = SETTLE_CALLS if len(runners) > 1 else 0  # one model alone never leaves the caches
    started, rounds = time.perf_counter(), 0
    while True:
        for name, run in runners.items():
            for _ in range(settle):
                run()
            start = time.perf_counter()
            run()
            samples[name].append((time.perf_counter() - start) * 1000.0)
        rounds += 1
        if seconds is not None:
            if time.perf_counter() - started >= seconds and rounds >= MIN_ROUNDS:
                return samples
        elif rounds >= (iterations or 1):
            return samples


def interleaved(runners: dict[str, Callable[[], object]], iterations: int, warmup: int = 3) -> dict[str, dict]:
    """Summaries (ms) of ``iterations`` interleaved rounds."""
    return {name: summarize(values) for name, values in interleaved_samples(runners, iterations, None, warmup).items()}


def concurrent(run: Callable[[], object], streams: int, pool) -> Callable[[], object]:
    """A runner that makes ``streams`` calls of ``run`` at once on ``pool`` and waits for all.

    Throughput mode: on a small CPU, N requests each on 1 thread usually beat 1 request on
    N threads, because ORT's per-op parallel sections and its serial ops (Concat, Mul,
    Add at batch 1) leave cores idle. The timed value is the wall time of the N calls.
    """
    if streams == 1:
        return run

    def all_streams() -> None:
        for future in [pool.submit(run) for _ in range(streams)]:
            future.result()

    return all_streams


def summarize(values_ms: list[float]) -> dict:
    data = np.asarray(values_ms)
    return {
        "iterations": len(data),
        "p50_ms": round(float(np.percentile(data, 50)), 4),
        "p90_ms": round(float(np.percentile(data, 90)), 4),
        "p99_ms": round(float(np.percentile(data, 99)), 4),
        "mean_ms": round(float(data.mean()), 4),
        "std_ms": round(float(data.std()), 4),
    }
