"""The parity figures and verdicts, on arrays with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ghostexport.evidence.parity import FP32_TOLERANCE, Tolerance, compare, parity_over_batches

finite = st.floats(-50, 50, allow_nan=False, width=32)


@given(arrays(np.float32, st.tuples(st.integers(1, 4), st.integers(2, 12)), elements=finite))
def test_identical_outputs_pass(logits):
    result = compare(logits, logits.copy(), FP32_TOLERANCE)
    assert result["verdict"] == "pass" and result["max_abs"] == 0 and result["min_cosine"] == 1.0


@given(arrays(np.float32, (3, 10), elements=st.floats(1, 50, width=32)), st.floats(2.0, 100.0))
def test_an_element_beyond_atol_plus_rtol_fails(logits, factor):
    candidate = logits.astype(np.float64).copy()
    candidate[1, 3] += factor * (FP32_TOLERANCE.atol + FP32_TOLERANCE.rtol * abs(candidate[1, 3]))
    result = compare(logits, candidate, FP32_TOLERANCE)
    assert result["verdict"] == "fail" and result["failing_elements"] == 1
    assert result["worst_ratio"] == pytest.approx(factor, rel=1e-3)


def test_nan_and_inf_fail():
    reference = np.ones((2, 5), dtype=np.float32)
    for bad in (np.nan, np.inf):
        candidate = reference.copy()
        candidate[0, 0] = bad
        result = compare(reference, candidate, FP32_TOLERANCE)
        assert result["verdict"] == "fail" and result["nonfinite"] == 1 and "NaN/Inf" in result["reasons"][0]


def test_cosine_gate_catches_small_uniform_drift():
    reference = np.random.default_rng(0).standard_normal((4, 100))
    candidate = reference + 0.05 * np.random.default_rng(1).standard_normal((4, 100))
    loose = Tolerance(atol=1.0, rtol=0.0, min_cosine=0.99999)
    result = compare(reference, candidate, loose)
    assert result["failing_elements"] == 0 and result["verdict"] == "fail"
    assert "cosine" in result["reasons"][0]


def test_shape_mismatch_fails():
    result = compare(np.zeros((2, 10)), np.zeros((2, 9)), FP32_TOLERANCE)
    assert result["verdict"] == "fail" and "shape" in result["reasons"][0]


def test_batch_dependent_bug_is_caught_at_that_batch_only():
    inputs = np.random.default_rng(0).standard_normal((8, 6)).astype(np.float32)
    reference = inputs * 2

    def flaky(batch):  # wrong only when run four at a time
        return batch * 2 + (0.5 if len(batch) == 4 else 0.0)

    result = parity_over_batches(reference, flaky, inputs, (1, 4))
    assert result["per_batch"]["1"]["verdict"] == "pass" and result["per_batch"]["4"]["verdict"] == "fail"
    assert result["verdict"] == "fail" and result["reasons"][0].startswith("batch 4:")
