"""GhostNet v1 in PyTorch: counts, key layout, make_divisible, BN folding."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ghostexport.model.arch import GhostNet, GhostNetConfig, create_model
from ghostexport.model.arch.ghostnet import make_divisible
from ghostexport.model.counting import count_macs, count_params
from ghostexport.model.fold import fold_batchnorm


@pytest.mark.parametrize("width, name", [(0.5, "ghostnet_050"), (1.0, "ghostnet_100"), (1.3, "ghostnet_130")])
def test_counts_match_reference(width, name, reference_dir):
    facts = json.loads((reference_dir / "ghostnet_family_facts.json").read_text())[name]
    model = GhostNet(GhostNetConfig(width))
    assert count_params(model) == facts["params"]
    macs = count_macs(fold_batchnorm(model), 224)
    assert abs(macs - facts["macs_224_conv_fc"]) / facts["macs_224_conv_fc"] <= 0.005
    assert len(model.state_dict()) == facts["state_dict_entries"]


def test_key_layout_matches_official_and_timm(reference_dir):
    rows = (reference_dir / "ghostnet_100_state_dict.tsv").read_text().splitlines()[1:]
    expected = [(key, shape) for key, shape in (row.split("\t") for row in rows)]
    actual = [(key, str(list(value.shape))) for key, value in GhostNet().state_dict().items()]
    assert actual == expected


@given(st.floats(min_value=0.01, max_value=4096, allow_nan=False))
def test_make_divisible_properties(value):
    result = make_divisible(value, 4)
    assert result % 4 == 0 and result >= 4
    assert result >= 0.9 * value  # never loses more than 10%
    assert abs(result - value) <= 4 or result == 4  # stays close (or is the floor)


@pytest.mark.parametrize("width", [0, -1.0, float("nan"), float("inf")])
def test_invalid_width_is_rejected(width):
    with pytest.raises(ValueError, match="width"):
        GhostNetConfig(width)


@settings(max_examples=8, deadline=None)
@given(
    width=st.sampled_from([0.1, 0.25, 0.35, 0.5, 0.75]),
    resolution=st.sampled_from([32, 40, 64, 72]),
    batch=st.integers(1, 3),
    classes=st.integers(1, 20),
)
def test_forward_shapes_and_bn_folding(width, resolution, batch, classes):
    model = create_model("ghostnet", width, classes, seed=1)
    inputs = torch.randn(batch, 3, resolution, resolution)
    with torch.no_grad():
        reference = model(inputs)
        folded = fold_batchnorm(model)(inputs)
    assert reference.shape == (batch, classes)
    assert torch.isfinite(reference).all()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fold_batchnorm(model).modules())
    torch.testing.assert_close(folded, reference, atol=1e-4, rtol=1e-3)


def test_random_init_is_seeded_and_exercises_batchnorm():
    first, second, other = (create_model("ghostnet", 0.5, 10, seed) for seed in (3, 3, 4))
    for key, value in first.state_dict().items():
        assert torch.equal(value, second.state_dict()[key]), key
    assert not torch.equal(first.conv_stem.weight, other.conv_stem.weight)
    # BN statistics are not the defaults, so folding is really tested by the parity gate
    assert not torch.allclose(first.bn1.running_var, torch.ones_like(first.bn1.running_var))


def test_dropout_only_in_training():
    model = create_model("ghostnet", 0.5, 10, seed=0)
    inputs = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model.eval()(inputs), model(inputs))
        model.train()
        assert not torch.equal(model(inputs), model(inputs))  # dropout 0.2 is active
        model.drop_rate = 0.0
        assert torch.equal(model(inputs), model(inputs))
