"""The fastest verified artifact here, and the session settings it runs fastest with.

Every candidate artifact is timed with every combination of the session settings worth
trying on a CPU (intra-op threads: 1 or one per physical core; thread spinning on or off;
graph optimisation ALL or EXTENDED), within a time budget. Settings that make sessions
disturb each other (spinning) rule out timing them interleaved one run at a time, so each
(artifact, settings) pair runs a short block of consecutive runs, and the blocks are
interleaved round-robin until the budget is spent: background load still hits every pair
alike, and spinning still shows what it buys within a block. Medians decide.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .progress import Progress, silent
from .providers import ProviderOptions, make_session
from .runtime import physical_cores

BLOCK = 5
MIN_ROUNDS = 3


@dataclass(frozen=True)
class SessionSettings:
    threads: int
    spinning: bool
    optimization: str  # "all" | "extended"

    def label(self) -> str:
        return f"{self.threads} thread{'s' if self.threads > 1 else ''}, spinning {'on' if self.spinning else 'off'}, {self.optimization}"


def settings_grid(cores: int | None = None) -> list[SessionSettings]:
    threads = sorted({1, cores or physical_cores()})
    return [
        SessionSettings(t, spinning, optimization)
        for t in threads
        for spinning in (True, False)
        for optimization in ("all", "extended")
    ]


def time_blocks(runners: dict, budget_s: float) -> dict:
    """Per key, the latencies (ms) of blocks of ``BLOCK`` runs, interleaved round-robin until the budget is spent."""
    for run in runners.values():  # warm-up: kernels chosen, memory planned
        run()
    samples: dict = {key: [] for key in runners}
    started, rounds = time.perf_counter(), 0
    while rounds < MIN_ROUNDS or time.perf_counter() - started < budget_s:
        for key, run in runners.items():
            for _ in range(BLOCK):
                tick = time.perf_counter()
                run()
                samples[key].append((time.perf_counter() - tick) * 1000.0)
        rounds += 1
    return samples


def recommend(candidates: dict[str, Path], reference: dict[str, Path], budget_s: float, say: Progress = silent) -> dict:
    """Time ``candidates`` (eligible) and ``reference`` (for ratios only) at batch 1 under every setting.

    Returns every (artifact, settings) median, each artifact's best, and the recommendation:
    the fastest eligible pair, with its ratio to the best fp32 (``model.onnx``) and to each
    reference artifact's best.
    """
    grid = settings_grid()
    runners: dict[tuple[str, SessionSettings], Callable[[], object]] = {}
    for label, path in {**candidates, **reference}.items():
        for settings in grid:
            runners[(label, settings)] = _runner(path, settings)
    say("select", f"{len(candidates)} artifacts × {len(grid)} session settings, {budget_s:g} s")
    medians = {key: float(np.median(values)) for key, values in time_blocks(runners, budget_s).items()}
    rows = [
        {"artifact": label, **asdict(settings), "p50_ms": round(value, 4)}
        for (label, settings), value in sorted(medians.items(), key=lambda item: item[1])
    ]
    best = {}
    for row in rows:
        best.setdefault(row["artifact"], row)
    chosen = next(row for row in rows if row["artifact"] in candidates)
    ratios = {f"to {label}": round(chosen["p50_ms"] / best[label]["p50_ms"], 3) for label in best}
    return {"rows": rows, "best": best, "recommended": {**chosen, "ratios": ratios}}


def _runner(path: Path, settings: SessionSettings) -> Callable[[], object]:
    options = ProviderOptions("cpu", threads=settings.threads, spinning=settings.spinning)
    session = make_session(str(path), options, optimization=settings.optimization).session
    first = session.get_inputs()[0]
    shape = [1 if not isinstance(d, int) else d for d in first.shape]
    feed = {first.name: np.random.default_rng(0).standard_normal(shape, dtype=np.float32)}
    return lambda: session.run(None, feed)
