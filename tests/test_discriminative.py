"""The gates can fail for the right reason: a model that computes on the wrong input is caught.

For every variant, at random init (BatchNorm statistics from the seeded data-dependent
pass) and with a checkpoint, a copy of ``model.onnx`` that negates its input, swaps RGB to
BGR, or shifts it by one pixel must fail ``check --reference model.onnx``; the model itself
must pass. Library calls in-process keep this fast; one CLI run proves the exit code.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ghostexport.base.errors import GateFailed
from ghostexport.evidence.comparison import centred_figures, input_dependence
from ghostexport.folder.reference import prepare_model
from ghostexport.stages.build import build
from ghostexport.stages.check import check

from .conftest import run_cli

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from wrong_input import wrong_input

VARIANTS = ("ghostnet", "ghostnetv2", "ghostnetv3")
WIDTH, RESOLUTION, CLASSES = 0.5, 64, 10


#: random init in the default suite; with a checkpoint in the slow suite (CI runs both)
BUILDS = [
    pytest.param((v, w), marks=[pytest.mark.slow] if w == "checkpoint" else [])
    for v in VARIANTS
    for w in ("random", "checkpoint")
]


@pytest.fixture(scope="module", params=BUILDS, ids=lambda param: str(param))
def built(request, tmp_path_factory) -> Path:
    variant, weights = request.param
    out = tmp_path_factory.mktemp(f"{variant}-{weights}")
    checkpoint = None
    if weights == "checkpoint":
        # a checkpoint as training leaves one: statistics that follow the data (another seed than the build's)
        model = prepare_model(variant, WIDTH, CLASSES, seed=5, resolution=RESOLUTION)
        checkpoint = out / "trained.pth"
        torch.save(model.state_dict(), checkpoint)
    result = build(
        variant=variant,
        width=WIDTH,
        num_classes=CLASSES,
        resolution=RESOLUTION,
        checkpoint=checkpoint,
        out=out / "models",
    )
    return result.folder


@pytest.mark.parametrize("how", ["negated", "bgr", "shifted"])
def test_a_model_on_the_wrong_input_fails_check(built, how, tmp_path):
    bad = wrong_input(built / "model.onnx", tmp_path / f"{how}.onnx", how)
    with pytest.raises(GateFailed) as failure:
        check(bad, reference=str(built / "model.onnx"))
    (entry,) = failure.value.result.results
    assert entry["verdict"] == "fail" and entry["centred_cosine"] < 0.9
    assert any("centred cosine" in reason for reason in entry["reasons"])


def test_the_model_itself_passes_and_its_answers_follow_the_input(built):
    result = check(built)
    (entry,) = result.results
    assert entry["verdict"] == "pass" and entry["centred_cosine"] > 0.9999
    # what makes the gates discriminative: the logits differ from sample to sample
    assert entry["input_dependence"] > 0.1
    assert not any("barely depend" in warning for warning in result.warnings)


@pytest.mark.parametrize("built", [("ghostnet", "random")], indirect=True, ids=str)
def test_the_cli_exits_1_on_a_negated_input(built, tmp_path):
    bad = wrong_input(built / "model.onnx", tmp_path / "negated.onnx", "negated")
    result = run_cli("check", str(bad), "--reference", str(built / "model.onnx"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "centred cosine" in result.stdout


def test_random_init_without_the_statistics_pass_barely_depends_on_the_input():
    """Why the pass exists: the same seeded model without it gives nearly one answer for every input."""
    inputs = torch.from_numpy(np.random.default_rng(0).standard_normal((8, 3, 64, 64), dtype=np.float32))
    with torch.no_grad():
        plain = prepare_model("ghostnetv3", WIDTH, 1000, seed=0)(inputs).numpy()
        calibrated = prepare_model("ghostnetv3", WIDTH, 1000, seed=0, resolution=64)(inputs).numpy()
    assert input_dependence(plain) < 0.05 < 0.3 < input_dependence(calibrated)
    assert len(set(plain.argmax(1))) == 1 < len(set(calibrated.argmax(1)))


logit_batches = arrays(
    np.float64,
    st.tuples(st.integers(2, 16), st.integers(2, 50)),
    elements=st.floats(-100, 100, allow_nan=False, width=64),
)


@settings(max_examples=60, deadline=None)
@given(logit_batches, st.floats(-1e3, 1e3), st.floats(0.01, 100))
def test_centred_figures_ignore_offsets_and_scale_but_not_the_order_of_answers(logits, offset, scale):
    per_class = np.linspace(-1, 1, logits.shape[1]) * offset
    shifted = centred_figures(logits, logits * scale + per_class)
    if np.ptp(logits, axis=0).max() > 1e-3 * max(1.0, np.abs(logits).max()):
        assert shifted["centred_cosine"] == pytest.approx(1.0, abs=1e-6)
    swapped = logits[::-1]
    if not np.allclose(swapped, logits):  # a different assignment of answers to samples
        assert centred_figures(logits, swapped)["centred_cosine"] < 1.0 - 1e-9
    assert centred_figures(logits[:1], logits[:1]) == {"centred_cosine": None, "centred_sqnr_db": None}


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(["atol", "rtol", "min_cosine", "min_centred_cosine"]),
    st.one_of(st.just(float("nan")), st.just(float("inf")), st.just(-float("inf")), st.floats(-1e9, -1e-12)),
)
def test_no_tolerance_value_can_switch_a_gate_off(field, value):
    from ghostexport.base.errors import UsageError
    from ghostexport.evidence.parity import Tolerance
    from ghostexport.evidence.quality import QualityGate

    if field.startswith("min_") and -1 <= value <= 1:
        value = -1.5  # a negative cosine bar within [-1, 1] is legal; out of range is not
    with pytest.raises(UsageError):
        Tolerance(**{field: value})
    gate_field = {"min_cosine": "min_mean_cosine", "min_centred_cosine": "min_centred_cosine"}.get(field)
    if gate_field:
        with pytest.raises(UsageError):
            QualityGate(**{gate_field: value})


@pytest.mark.parametrize("built", [("ghostnet", "random")], indirect=True, ids=str)
def test_check_refuses_nan_tolerances_before_any_work(built, tmp_path):
    bad = wrong_input(built / "model.onnx", tmp_path / "negated.onnx", "negated")
    result = run_cli(
        "check",
        str(bad),
        "--reference",
        str(built / "model.onnx"),
        "--atol",
        "nan",
        "--rtol",
        "nan",
        "--min-cosine",
        "nan",
    )
    assert result.returncode == 2 and "--atol must be a finite number >= 0" in result.stderr
