"""``--target``: the machine class an artifact is built and quantized for, recorded everywhere."""

from __future__ import annotations

import json
import platform
import shutil
from pathlib import Path

import onnx
import pytest

from ghostexport.base.errors import UsageError
from ghostexport.targets.profiles import (
    TARGETS,
    host_class,
    int8_types,
    not_measured_here,
    target_profile,
)

from .conftest import SMALL, SMALL_SIZE, load_json, run_cli

#: every target in the slow suite; one aligned x86 class by default (arm64 and mobile below)
ALL_TARGETS = [pytest.param(name, marks=[] if name == "x86-avx2" else [pytest.mark.slow]) for name in TARGETS]


#: what each named target must apply, written out here (not read from the profiles under test):
#: (channel alignment, Concat split, static batch, op forms); host is the x86 class layout of any x86 machine
EXPECTED_LAYOUTS = {
    "host": (0, False, None, "as exported")
    if platform.machine().lower() in ("aarch64", "arm64")
    else (8, True, None, "as exported"),
    "x86-avx2": (8, True, None, "as exported"),
    "x86-avx512": (16, True, None, "as exported"),
    "x86-vnni": (16, True, None, "as exported"),
    "arm64": (0, False, None, "as exported"),
    "mobile": (0, False, 1, "mobile"),
    "cuda": (0, False, None, "as exported"),
    "tensorrt": (0, False, None, "as exported"),
}


def test_every_target_has_an_expected_layout():
    assert set(EXPECTED_LAYOUTS) == set(TARGETS)


@pytest.mark.parametrize("name", ALL_TARGETS)
def test_a_build_for_a_target_applies_and_records_its_profile(name, tmp_path):
    result = run_cli("build", *SMALL_SIZE, "--target", name, "--out", str(tmp_path), "--json", str(tmp_path / "r.json"))
    assert result.returncode == 0, result.stderr + result.stdout
    folder = Path(load_json(tmp_path / "r.json")["folder"])
    manifest = load_json(folder / "manifest.json")
    align, split, batch, forms = EXPECTED_LAYOUTS[name]
    target = manifest["model"]["target"]
    assert target["name"] == name and target["runs_on"] == TARGETS[name].runs_on
    assert target["applied"] == {
        "align_channels": align,
        "split_concat_convs": split,
        "static_batch": batch,
        "op_forms": forms,
    }
    assert manifest["model"]["batch"] == (batch or "dynamic")
    export = manifest["artifacts"]["model.onnx"]["export"]
    assert export["channel_alignment"] == (align or None)
    assert (export["concat_convs_split"] > 0) == split
    metadata = {p.key: p.value for p in onnx.load(str(folder / "model.onnx")).metadata_props}
    assert metadata["ghostexport.target"] == name
    assert f"{name}: {TARGETS[name].runs_on}" in run_cli("info", str(folder)).stdout.replace("\n", " ")


def test_explicit_flags_win_over_the_profile_and_both_are_recorded(tmp_path):
    # a target name only chooses the recorded profile here: nothing is timed or quantized, so the host's CPU is irrelevant
    args = ("--target", "x86-vnni", "--align-channels", "0", "--no-split-concat-convs")
    assert run_cli("build", *SMALL, *args, "--out", str(tmp_path)).returncode == 0
    target = load_json(tmp_path / "ghostnet_050-r64" / "manifest.json")["model"]["target"]
    assert target["profile"]["align_channels"] == 16 and target["profile"]["split_concat_convs"] is True
    assert target["applied"]["align_channels"] == 0 and target["applied"]["split_concat_convs"] is False


def test_a_variant_that_cannot_be_aligned_takes_the_rest_of_the_profile(tmp_path):
    from ghostexport import build

    result = build(variant="ghostnetv2", width=0.5, resolution=64, target="x86-avx2", out=tmp_path)
    applied = result.manifest["model"]["target"]["applied"]
    assert applied["align_channels"] == 0 and applied["split_concat_convs"] is True


@pytest.fixture(scope="module")
def arm_build(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("arm")
    assert run_cli("build", *SMALL_SIZE, "--target", "arm64", "--out", str(out)).returncode == 0
    return out / "ghostnet_050-r64"


def test_quantize_takes_the_builds_target_and_says_where_latency_was_not_measured(arm_build, tmp_path):
    from ghostexport import quantize

    folder = Path(shutil.copytree(arm_build, tmp_path / arm_build.name))
    result = quantize(folder, baseline=False)
    assert result.record["target"] == "arm64"
    recipe = result.record["recipe"]
    assert (recipe["activation_type"], recipe["weight_type"], recipe["reduce_range"]) == ("int8", "int8", False)
    elsewhere = not_measured_here(TARGETS["arm64"])  # None only on an ARM machine
    assert (elsewhere in result.warnings) if elsewhere else not any("latency is not" in w for w in result.warnings)


def test_quantize_target_overrides_the_builds(arm_build, tmp_path):
    folder = Path(shutil.copytree(arm_build, tmp_path / arm_build.name))
    result = run_cli("quantize", str(folder), "--target", "x86-avx2", "--no-baseline", "--mode", "int8-dynamic")
    assert result.returncode == 0, result.stderr + result.stdout
    record = load_json(folder / "manifest.json")["artifacts"]["model.int8-dynamic.onnx"]
    assert record["target"] == "x86-avx2" and record["recipe"]["reduce_range"] is True


def test_unknown_targets_are_refused_before_any_work(tmp_path):
    result = run_cli("build", *SMALL_SIZE, "--target", "riscv", "--out", str(tmp_path))
    assert result.returncode == 2 and "riscv" in result.stderr
    assert not (tmp_path / "ghostnet_050-r64").exists()
    with pytest.raises(UsageError, match="unknown --target riscv"):
        target_profile("riscv")


@pytest.mark.parametrize(
    ("flags", "machine", "expected"),
    [
        (["avx2", "fma"], "x86_64", "x86-avx2"),
        (["avx2", "avx512f", "avx512bw"], "x86_64", "x86-avx512"),
        (["avx2", "avx512f", "avx512_vnni"], "x86_64", "x86-vnni"),
        (["avx2", "avx_vnni"], "x86_64", "x86-vnni"),
        (["asimd", "asimddp"], "aarch64", "arm64"),
    ],
)
def test_this_machine_is_described_as_one_of_the_classes(flags, machine, expected, monkeypatch):
    """Forced CPU descriptions (inputs, not claims about this host): the class and the warning follow them."""
    import ghostexport.targets.host
    import ghostexport.targets.profiles

    assert host_class(flags, machine) == expected
    monkeypatch.setattr(ghostexport.targets.host, "cpu_description", lambda: ("forced", flags))
    monkeypatch.setattr(ghostexport.targets.profiles.platform, "machine", lambda: machine)
    assert not_measured_here(TARGETS[expected]) is None
    other = "arm64" if expected != "arm64" else "x86-avx2"
    assert f"on a {expected} machine" in not_measured_here(TARGETS[other])
    assert int8_types(TARGETS["host"])[:3] == int8_types(TARGETS[expected])[:3]
    # the host's layout is the one measured fastest on its class: aligned to 8 and split on x86, as built on ARM
    host = target_profile("host")
    assert (host.align_channels, host.split_concat_convs) == ((0, False) if expected == "arm64" else (8, True))
    assert host.layout_reason.startswith("as built" if expected == "arm64" else "aligned to 8 and split")
    # and its int8 types: symmetric s8 on ARM, u8/s8 on x86, reduce_range only without VNNI
    assert int8_types(host)[:3] == {
        "arm64": ("int8", "int8", False),
        "x86-vnni": ("uint8", "int8", False),
    }.get(expected, ("uint8", "int8", True))


def test_the_default_build_takes_the_host_layout(monkeypatch, tmp_path):
    """With this machine forced to AVX2, a build without --target is aligned to 8 and split, and says so."""
    import ghostexport.targets.host
    import ghostexport.targets.profiles

    monkeypatch.setattr(ghostexport.targets.host, "cpu_description", lambda: ("forced", ["avx2", "fma"]))
    monkeypatch.setattr(ghostexport.targets.profiles.platform, "machine", lambda: "x86_64")
    result = run_cli("build", "--width", "0.5", "--resolution", "64", "--out", str(tmp_path), "--json", "-")
    assert result.returncode == 0, result.stderr
    manifest = json.loads(result.stdout)["manifest"]
    applied = manifest["model"]["target"]["applied"]
    assert (applied["align_channels"], applied["split_concat_convs"]) == (8, True)
    assert manifest["artifacts"]["model.onnx"]["export"]["concat_convs_split"] > 0
    assert "host: channels aligned to 8, Concat split on" in result.stderr


@pytest.fixture(scope="module")
def mobile_build(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mobile")
    assert run_cli("build", *SMALL_SIZE, "--target", "mobile", "--out", str(out)).returncode == 0
    return out / "ghostnet_050-r64-b1"


def test_mobile_build_is_one_partition_on_nnapi_and_coreml_with_parity_unchanged(mobile_build):
    """Batch 1 and the exact HardSigmoid/Flatten forms: ORT's own usability checker sees one
    partition covering every node, where the same graph without the forms splits into 8 and 2."""
    record = load_json(mobile_build / "manifest.json")["artifacts"]["model.onnx"]
    assert record["export"]["mobile_forms"] == 8  # 7 HardSigmoid + 1 Flatten in GhostNet v1
    assert not {"HardSigmoid", "Flatten"} & set(record["export"]["ops"])
    for ep in ("NNAPI", "CoreML MLProgram"):
        usability = record["mobile_usability"]["eps"][ep]
        assert usability["supported_nodes"] == usability["nodes"] == record["nodes"] and usability["partitions"] == 1
    assert record["parity"]["verdict"] == "pass" and record["parity"]["simplified"]["max_abs"] < 1e-5


@pytest.mark.slow  # a second build; CI runs the slow suite too
def test_the_usability_check_can_fail(mobile_build, tmp_path):
    """The same model as exported (a static batch, no mobile forms): NNAPI loses the HardSigmoids."""
    from ghostexport.runtime.mobile import mobile_usability

    assert run_cli("build", *SMALL, "--batch", "1", "--out", str(tmp_path)).returncode == 0
    plain = mobile_usability(onnx.load(str(tmp_path / "ghostnet_050-r64-b1" / "model.onnx")))["eps"]
    assert plain["NNAPI"]["partitions"] > 1 and "ai.onnx:HardSigmoid" in plain["NNAPI"]["unsupported_ops"]
    assert plain["CoreML MLProgram"]["unsupported_ops"] == ["ai.onnx:Flatten"]


@pytest.mark.slow  # a quantize on top; CI runs the slow suite too
def test_quantized_mobile_artifacts_report_their_coverage(mobile_build, tmp_path):
    folder = Path(shutil.copytree(mobile_build, tmp_path / mobile_build.name))
    assert run_cli("quantize", str(folder), "--mode", "fp16").returncode == 0
    record = load_json(folder / "manifest.json")["artifacts"]["model.fp16.onnx"]
    assert record["target"] == "mobile"
    for usability in record["mobile_usability"]["eps"].values():  # counted after ORT's BASIC optimisation
        assert usability["supported_nodes"] == usability["nodes"] > 0 and usability["partitions"] == 1
