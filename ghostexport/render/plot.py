"""bench's picture: the latency distribution per model and batch, and throughput per batch size.

matplotlib is an optional extra (``[plot]``); without it ``--plot`` is a one-line error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ghostexport.base.errors import UsageError


def bench_plot(result, path: str | Path) -> Path:
    """Latency distribution (box plot per model and batch) and throughput per batch size."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise UsageError("--plot needs matplotlib: pip install 'ghostexport[plot]'") from exc
    models = list(dict.fromkeys(row["model"] for row in result.rows))
    batches = sorted({row["batch"] for row in result.rows})
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 5.5), gridspec_kw={"width_ratios": [3, 2]})
    colors = plt.get_cmap("tab10")
    positions, data, tick_labels = [], [], []
    for b_index, batch in enumerate(batches):
        for m_index, model in enumerate(models):
            if (model, batch) in result.samples:
                positions.append(b_index * (len(models) + 1) + m_index)
                data.append(result.samples[(model, batch)])
                tick_labels.append(f"{model}\nb{batch}")
    boxes = left.boxplot(
        data, positions=positions, widths=0.7, patch_artist=True, showfliers=False, medianprops={"color": "black"}
    )
    for patch, label in zip(boxes["boxes"], tick_labels, strict=True):
        patch.set_facecolor(colors(models.index(label.split("\n")[0]) % 10))
        patch.set_alpha(0.75)
    left.set_xticks(positions)
    left.set_xticklabels(tick_labels, rotation=35, ha="right", fontsize=8)
    left.set_ylabel("latency per batch (ms)")
    medians = [float(np.median(values)) for values in data]
    if max(medians) / max(min(medians), 1e-9) > 8:  # batch sizes far apart: log scale, else plain ms
        left.set_yscale("log")
    left.set_title("Latency distribution (box: p25–p75, whiskers: 1.5 IQR)")
    left.grid(axis="y", alpha=0.3, which="both")
    width = 0.8 / max(len(models), 1)
    for m_index, model in enumerate(models):
        values = [
            next((r["throughput_ips"] for r in result.rows if r["model"] == model and r["batch"] == b), 0)
            for b in batches
        ]
        xs = [b_index + m_index * width for b_index in range(len(batches))]
        bars = right.bar(xs, values, width=width, label=model, color=colors(m_index % 10), alpha=0.85)
        right.bar_label(bars, fmt="%.0f", fontsize=7, padding=2)
    right.set_xticks([b_index + width * (len(models) - 1) / 2 for b_index in range(len(batches))])
    right.set_xticklabels([f"batch {b}" for b in batches])
    right.set_ylabel("images / s (p50)")
    right.set_title("Throughput")
    right.legend(fontsize=8)
    right.grid(axis="y", alpha=0.3)
    env = result.environment
    subject = env.get("subject") or ", ".join(models)
    figure.suptitle(
        f"{subject}\nghostexport bench — {env['cpu']} — ORT {env['onnxruntime']} — "
        f"{env.get('provider', env['provider_requested'])} — threads: {env['threads']}",
        fontsize=10,
    )
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=130)
    plt.close(figure)
    return path
