"""The fastest verified artifact here, and the session settings it runs fastest with.

Every candidate artifact is timed with every combination of the settings worth trying on a
CPU, within a time budget: for ONNX Runtime, intra-op threads (1 or one per physical core),
thread spinning on or off and graph optimisation ALL or EXTENDED; for the edge runtimes
(LiteRT, ExecuTorch: XNNPACK), the thread count alone (ExecuTorch: one per physical core,
as its thread pool is one per process); for OpenVINO, the thread count under the latency
hint (one stream), at the inference precision the artifact was gated at. Settings that make sessions disturb
each other (spinning) rule out timing them interleaved one run at a time, so each
(artifact, settings) pair runs a short block of consecutive runs, and the blocks are
interleaved round-robin until the budget is spent: background load still hits every pair
alike, and spinning still shows what it buys within a block; a block whose pool may spin is
followed by a short pause, so that its workers are idle before the next block starts.
Medians decide.

Two passes, because on a small or shared machine one pass over dozens of pairs gives each
only a few blocks: the first (two thirds of the budget) times the whole grid; the second
re-times only the finalists — the fastest eligible pairs, the best fp32 pair and each
reference's best pair (on a 2-core VM a pass as a whole can run 20-40% slower than the one
before it, so neither pass alone is the better evidence).

One figure per (artifact, runtime, settings): every pair's median is over all its samples,
both passes where it had two, and the table, each artifact's best, the recommendation (the
fastest eligible row of that table), its ratios and the notes all read that one table.
Each median comes with a 95% interval, computed over the medians of its blocks (runs
within a block are not independent), so that "slower" is said only where intervals do not
overlap.

Load is recorded, not assumed away: each pass notes the 1-minute load average before and
after it and the spread of its rounds (how much a whole round's time varied: the 10th to
90th percentile range over the median), so a reader can tell a quiet measurement from a
loaded one. And where the fastest eligible row's interval overlaps others', the choice
among them is not left to noise: ``SIMPLER_FIRST`` picks the simplest (see ``simplicity``),
and the record names every row it was not told apart from.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ghostexport.base.progress import Progress, silent
from ghostexport.folder.artifacts import MODEL_FILE
from ghostexport.render.console import settings_words
from ghostexport.runtime.edge import runtime_of
from ghostexport.runtime.latency import SETTLE_CALLS
from ghostexport.runtime.ort import physical_cores
from ghostexport.runtime.providers import ProviderOptions, make_session

BLOCK = 5
#: after a block whose thread pool spins (ORT with spinning on; XNNPACK's pthreadpool with more
#: than one thread), the time its workers need to go idle; without it they stole a core from the
#: next block (measured: the naive export 8.4 ms instead of 5.2 ms after one, LiteRT 2.3× slower)
SPIN_PAUSE_S = 0.03
MIN_ROUNDS = 3
FINALISTS = 3  # eligible pairs re-timed in the second pass
SECOND_PASS_SHARE = 1 / 3
ORT = "onnxruntime"


@dataclass(frozen=True)
class SessionSettings:
    threads: int  # 0: the runtime's own default
    spinning: bool | None = None  # ONNX Runtime only
    optimization: str | None = None  # ONNX Runtime only: "all" | "extended"
    hint: str | None = None  # OpenVINO only: its performance hint ("latency")
    streams: int | None = None  # OpenVINO only: inference streams (the latency hint: 1)
    precision: str | None = None  # OpenVINO only: the inference precision (f32, bf16, f16; None: its default)

    @property
    def may_spin(self) -> bool:
        """Whether the pool keeps spinning after a call: ORT with spinning on, XNNPACK or OpenVINO with several threads."""
        return bool(self.spinning) if self.spinning is not None else self.threads != 1

    def label(self) -> str:
        return settings_words(asdict(self))


@dataclass(frozen=True)
class Runs:
    """How one timed artifact runs: its file, the runtime, and (OpenVINO) the inference precision it was gated at."""

    path: Path
    runtime: str
    precision: str | None = None
    #: a reference run as a user would run it: the runtime's defaults alone (OpenVINO), not ghostexport's grid
    defaults: bool = False


def settings_label(row: dict) -> str:
    """A timing row's settings in words, as ``SessionSettings.label`` says them."""
    return _key(row)[1].label()


def openvino_settings(threads: int, precision: str | None) -> SessionSettings:
    """OpenVINO as ghostexport runs it for latency: the latency hint (one stream), ``threads``, ``precision``."""
    return SessionSettings(threads, hint="latency", streams=1 if threads else None, precision=precision)


def settings_grid(runtime: str = ORT, cores: int | None = None, precision: str | None = None) -> list[SessionSettings]:
    """The settings tried for one runtime: ORT's full grid, thread counts for XNNPACK runtimes and OpenVINO."""
    cores = cores or physical_cores()
    threads = sorted({1, cores})
    if runtime == "openvino":
        return [openvino_settings(t, precision) for t in threads]
    if runtime != ORT:
        from ghostexport.runtime.edge import thread_counts

        return [SessionSettings(t) for t in thread_counts(runtime, cores)]
    return [
        SessionSettings(t, spinning, optimization)
        for t in threads
        for spinning in (True, False)
        for optimization in ("all", "extended")
    ]


def time_blocks(
    runners: dict, budget_s: float, spinning: frozenset = frozenset(), round_ms: list[float] | None = None
) -> dict:
    """Per key, the latencies (ms) of blocks of ``BLOCK`` runs, interleaved round-robin until the budget is spent.

    Each block starts with ``SETTLE_CALLS`` untimed calls (the model back in the caches); after
    a block of a key in ``spinning`` the next waits ``SPIN_PAUSE_S`` (untimed, busy: ``hold``).
    ``round_ms`` receives each round's timed total.
    """
    for run in runners.values():  # warm-up: kernels chosen, memory planned
        run()
    samples: dict = {key: [] for key in runners}
    started, rounds = time.perf_counter(), 0
    while rounds < MIN_ROUNDS or time.perf_counter() - started < budget_s:
        before = sum(map(sum, samples.values()))
        for key, run in runners.items():
            for _ in range(SETTLE_CALLS):  # untimed: wakes the pool the last pause put to sleep, refills the caches
                run()
            for _ in range(BLOCK):
                tick = time.perf_counter()
                run()
                samples[key].append((time.perf_counter() - tick) * 1000.0)
            if key in spinning:
                hold(SPIN_PAUSE_S)
        rounds += 1
        if round_ms is not None:
            round_ms.append(sum(map(sum, samples.values())) - before)
    return samples


def hold(seconds: float) -> None:
    """Wait ``seconds`` busy, not asleep: the pause in which spinning pools go idle must not idle this core too.

    Measured on a 2-core VM (7 pairs, four runtimes): with ``time.sleep`` for the pause, every
    block that followed ran 1.2-2.5× slower than the same model alone (the hypervisor idles a
    sleeping vCPU, and it comes back slow), OpenVINO the most; busy-waiting, each pair's median
    was within 10% of its latency alone.
    """
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def timed_pass(runners: dict, budget_s: float, spinning: frozenset) -> tuple[dict, dict]:
    """``time_blocks``, and how loaded the machine was meanwhile: the load average around it, the rounds' spread."""
    round_ms: list[float] = []
    load_before = _load_average()
    tick = time.perf_counter()
    samples = time_blocks(runners, budget_s, spinning, round_ms)
    low, middle, high = np.percentile(round_ms, [10, 50, 90])
    return samples, {
        "seconds": round(time.perf_counter() - tick, 2),
        "rounds": len(round_ms),
        "pairs": len(runners),
        "load_average_before": load_before,
        "load_average_after": _load_average(),
        "round_spread": round(float((high - low) / middle), 4) if middle > 0 else None,
    }


def _load_average() -> float | None:
    """The 1-minute load average (runnable processes), or None where the OS has none."""
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def recommend(
    candidates: dict[str, Path | Runs],
    reference: dict[str, Path | Runs],
    budget_s: float,
    say: Progress = silent,
    resolution: int | None = None,
    also: tuple[SessionSettings, ...] = (),
) -> dict:
    """Time ``candidates`` (eligible) and ``reference`` (for ratios only) at batch 1 under every setting.

    ``.onnx`` files run on ORT, ``.tflite``/``.pte``/``.xml`` on their own runtime (``resolution``
    gives their input size); a ``Runs`` names the runtime (OpenVINO on an ``.onnx``) and the
    inference precision; one marked ``defaults`` is timed at OpenVINO's defaults alone, as a
    user would run it. ``also`` adds ORT settings to the grid (bench's own, so that its table can show
    this measurement instead of taking a second one). Returns every (artifact, settings) row
    with its median and interval, each artifact's fastest row, the finalists, the raw samples,
    the load each pass ran under, and the recommendation: the fastest eligible row, or the
    simplest of those not told apart from it (``choose``), with its latency as a ratio to each
    other artifact's fastest.
    """
    runs = {label: _runs(value) for label, value in {**candidates, **reference}.items()}
    runners = {}
    for label, how in runs.items():
        if how.defaults and how.runtime == "openvino":
            grid = [openvino_settings(0, how.precision)]  # OpenVINO's defaults (or only a forced precision)
        else:
            grid = settings_grid(how.runtime, precision=how.precision)
        # ORT sessions take any settings; an edge runtime's thread pool is sized once per process, so its grid stays
        grid += [extra for extra in also if how.runtime == ORT and extra.spinning is not None and extra not in grid]
        for settings in grid:
            runners[(label, settings)] = _runner(how, settings, resolution)
    say(
        "select",
        f"{len(candidates)} eligible of {len(candidates) + len(reference)} timed, {len(runners)} pairs, {budget_s:g} s",
    )
    spinning = frozenset(key for key in runners if key[1].may_spin)
    first, first_load = timed_pass(runners, budget_s * (1 - SECOND_PASS_SHARE), spinning)
    first_rows = _rows(first, runs)
    finalists = _finalists(first_rows, _fastest_per_artifact(first_rows), candidates)
    say("select", f"second pass: {len(finalists)} finalists, {budget_s * SECOND_PASS_SHARE:.1f} s")
    second, second_load = timed_pass({key: runners[key] for key in finalists}, budget_s * SECOND_PASS_SHARE, spinning)
    samples = {key: first[key] + second.get(key, []) for key in first}
    rows = _rows(samples, runs)
    best = _fastest_per_artifact(rows)
    chosen, tie = choose([row for row in rows if row["artifact"] in candidates])
    ratios = {
        f"to {label}": round(chosen["p50_ms"] / row["p50_ms"], 3)
        for label, row in best.items()
        if label != chosen["artifact"]
    }
    return {
        "rows": rows,
        "best": best,
        "finalists": [{"artifact": label, **asdict(settings)} for label, settings in finalists],
        "samples": samples,
        "load": {"cpus": os.cpu_count() or 1, "first_pass": first_load, "second_pass": second_load},
        "tie": tie,
        "recommended": {**chosen, "ratios": ratios},
    }


#: rows whose intervals overlap the fastest's and whose medians lie within this fraction of it are
#: not told apart: the simplest of them is recommended (a preference that costs at most this much)
TIE_MARGIN = 0.05
#: the stated order of preference among rows not told apart: full precision before reduced, then
#: the more portable runtime, then the runtime's default settings (threads = one per physical core,
#: ORT's spinning on and full graph optimisation), then the faster median
RUNTIME_PORTABILITY = (ORT, "openvino", "litert", "executorch")
SIMPLER_FIRST = (
    "full precision before reduced (fp32 < bf16/fp16 < int8), then the more portable runtime "
    f"({' < '.join(RUNTIME_PORTABILITY)}), then the runtime's default settings, then the faster median"
)


def simplicity(row: dict, cores: int | None = None) -> tuple:
    """The sort key of ``SIMPLER_FIRST``: lower is simpler."""
    cores = cores or physical_cores()
    name, precision = row["artifact"], row.get("precision")
    reduced = 2 if ".int8." in name else 1 if ".fp16." in name or precision in ("bf16", "f16") else 0
    runtime = RUNTIME_PORTABILITY.index(row["runtime"]) if row["runtime"] in RUNTIME_PORTABILITY else 9
    changed = (
        (row["threads"] not in (0, cores)) + (row.get("spinning") is False) + (row.get("optimization") == "extended")
    )
    return reduced, runtime, changed, row["p50_ms"]


def choose(eligible: list[dict]) -> tuple[dict, dict | None]:
    """The recommendation among ``eligible`` rows (fastest first), and the tie it settled, if any.

    The tie: every row whose 95% interval overlaps the fastest's (so "faster" cannot be said);
    those also within ``TIE_MARGIN`` of its median compete, and ``simplicity`` picks one.
    """
    fastest = eligible[0]
    high = fastest["p50_interval_ms"][1]
    overlapping = [row for row in eligible[1:] if row["p50_interval_ms"][0] <= high]
    if not overlapping:
        return fastest, None
    close = [fastest] + [row for row in overlapping if row["p50_ms"] <= fastest["p50_ms"] * (1 + TIE_MARGIN)]
    chosen = min(close, key=simplicity)
    return chosen, {
        "fastest": _key_text(fastest),
        "not_told_apart": [_key_text(row) for row in overlapping],
        "competing": [_key_text(row) for row in close],
        "rule": SIMPLER_FIRST,
        "margin": TIE_MARGIN,
        "chosen": _key_text(chosen),
    }


def _key_text(row: dict) -> str:
    return f"{row['artifact']} ({settings_label(row)}): {row['p50_ms']:.3f} ms"


def median_interval(samples: list[float], block: int = BLOCK) -> tuple[float, float]:
    """A distribution-free 95% interval for the median, over the medians of consecutive blocks of ``block`` runs.

    Order statistics n/2 ± 0.98·√n of the block medians (the binomial interval of the
    median); with fewer than 6 blocks, their full range.
    """
    values = np.asarray(samples, dtype=float)
    whole = len(values) // block * block
    medians = np.sort(np.median(values[:whole].reshape(-1, block), axis=1)) if whole else np.sort(values)
    n = len(medians)
    if n < 6:
        return float(medians[0]), float(medians[-1])
    half = 0.98 * np.sqrt(n)
    low, high = int(np.floor(n / 2 - half)), int(np.ceil(n / 2 + half))
    return float(medians[max(low, 0)]), float(medians[min(high, n - 1)])


def _fastest_per_artifact(rows: list[dict]) -> dict[str, dict]:
    """Each artifact's fastest row (``rows`` sorted fastest first)."""
    fastest: dict[str, dict] = {}
    for row in rows:
        fastest.setdefault(row["artifact"], row)
    return fastest


def _finalists(rows: list[dict], best: dict, candidates: dict) -> list[tuple]:
    """The fastest ``FINALISTS`` eligible pairs, the best fp32 pair and every other artifact's best pair."""
    eligible = [row for row in rows if row["artifact"] in candidates][:FINALISTS]
    others = [row for label, row in best.items() if label not in candidates or label == MODEL_FILE]
    keys = [_key(row) for row in eligible + others]
    return list(dict.fromkeys(keys))


def _key(row: dict) -> tuple[str, SessionSettings]:
    optional = {name: row.get(name) for name in ("hint", "streams", "precision")}
    return row["artifact"], SessionSettings(row["threads"], row["spinning"], row["optimization"], **optional)


def _runs(value: Path | Runs) -> Runs:
    return value if isinstance(value, Runs) else Runs(Path(value), runtime_of(Path(value)))


def _rows(samples: dict, runs: dict[str, Runs]) -> list[dict]:
    """One row per (artifact, settings): median, its 95% interval and the sample count; fastest first."""
    rows = []
    for (label, settings), values in samples.items():
        median = float(np.median(values))
        low, high = median_interval(values)
        low, high = min(low, median), max(high, median)  # the median of all runs, where blocks put it just outside
        rows.append(
            {
                "artifact": label,
                "runtime": runs[label].runtime,
                **asdict(settings),
                "p50_ms": round(median, 4),
                "p50_interval_ms": [round(low, 4), round(high, 4)],
                "samples": len(values),
            }
        )
    return sorted(rows, key=lambda row: row["p50_ms"])


def _runner(how: Runs, settings: SessionSettings, resolution: int | None) -> Callable[[], object]:
    path, runtime = how.path, how.runtime
    if runtime != ORT:
        if resolution is None:
            raise ValueError(f"{path.name}: the input resolution is needed to time an edge artifact")
        from ghostexport.runtime.edge import batch1_call

        return batch1_call(runtime, path, resolution, settings.threads or None, settings.precision or "auto")
    options = ProviderOptions("cpu", threads=settings.threads, spinning=settings.spinning)
    session = make_session(str(path), options, optimization=settings.optimization).session
    first = session.get_inputs()[0]
    shape = [1 if not isinstance(d, int) else d for d in first.shape]
    feed = {first.name: np.random.default_rng(0).standard_normal(shape, dtype=np.float32)}
    return lambda: session.run(None, feed)
