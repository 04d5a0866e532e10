"""``ghostexport quantize`` on the digits GhostNet (real images), through the CLI."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ghostexport.base.errors import GateFailed
from ghostexport.evidence.preprocess import preprocess_image
from ghostexport.folder.records import preprocess_config

from .conftest import load_json, run_cli, visible_entries

DATA = Path(__file__).parent / "data"
CHECKPOINT = DATA / "ghostnet_050-digits-r64.safetensors"
#: the digits GhostNet's build arguments
DIGITS_MODEL = ["--width", "0.5", "--resolution", "64", "--checkpoint", str(CHECKPOINT), "--align-channels", "0"]
DIGITS_MODEL += ["--no-split-concat-convs"]  # as built, whatever the host's layout
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import digits  # noqa: E402


@pytest.fixture(scope="session")
def digit_folders(tmp_path_factory) -> tuple[Path, Path]:
    """calibration (200) and test (360) digits as PNGs in class sub-folders."""
    root = tmp_path_factory.mktemp("digits")
    return digits.write_folder("calib", root / "calib"), digits.write_folder("test", root / "test")


@pytest.fixture(scope="session")
def digits_build(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("digits-models")
    result = run_cli("build", *DIGITS_MODEL, "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out / "ghostnet_050-c10-r64"


@pytest.fixture()
def fresh_build(digits_build, tmp_path) -> Path:
    """A private copy of the digits build that a test may quantize into."""
    return Path(shutil.copytree(digits_build, tmp_path / digits_build.name))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def quantize_digits(folder: Path, digit_folders: tuple[Path, Path], *options: str):
    """``ghostexport quantize FOLDER --calib <200 digits> --eval <360 others> [OPTIONS]``."""
    calib, test = digit_folders
    return run_cli("quantize", str(folder), "--calib", str(calib), "--eval", str(test), *options)


@pytest.mark.slow  # the recipe-branch test covers the same bar by default; CI runs the slow suite too
def test_int8_end_to_end_meets_the_bar(fresh_build, digit_folders):
    fp32_before = sha(fresh_build / "model.onnx")
    result = quantize_digits(
        fresh_build,
        digit_folders,
        "--json",
        str(fresh_build.parent / "r.json"),
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert sha(fresh_build / "model.onnx") == fp32_before  # the fp32 model is never modified
    record = load_json(fresh_build / "manifest.json")["artifacts"]["model.int8.onnx"]
    assert record["parent"] == fp32_before and record["sha256"] == sha(fresh_build / "model.int8.onnx")
    quality = record["quality"]
    assert quality["verdict"] == "pass" and quality["enforced"] and quality["samples"] == 360
    assert quality["accuracy_drop_points"] <= 0.5 and quality["accuracy_reference"] >= 0.97
    assert quality["sqnr_db"] >= record["baseline"]["sqnr_db"] + 2.0  # the recipe's margin over ORT's stock recipe
    assert record["recipe"]["kept_float"] == ["/conv_stem/Conv"]  # the default float end
    assert record["graph_forms"] == {"split_convs_merged": 0, "stem": "as built", "float_logits": True}
    assert record["calibration"]["samples"] == 200 and not record["calibration"]["synthetic"]
    ops = {node.op_type for node in onnx.load(str(fresh_build / "model.int8.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops


@pytest.mark.slow  # full quantize + check round; CI runs the slow suite too
def test_split_build_with_quantized_stem_keeps_the_bar(digits_build, digit_folders, tmp_path):
    """A --split-concat-convs build quantizes from the merged graph (its int8 quality is the
    unsplit build's, not the 3 dB lower split one), and --float-ends none runs the stem in
    int8 through its space-to-depth form, still meeting the bar over ORT's stock recipe."""
    out = tmp_path / "models"
    built = run_cli(
        "build",
        *DIGITS_MODEL,
        "--split-concat-convs",
        "--out",
        str(out),
    )
    assert built.returncode == 0, built.stderr
    folder = out / digits_build.name
    for ends in ("stem", "none"):
        result = quantize_digits(
            folder,
            digit_folders,
            "--float-ends",
            ends,
            *(() if ends == "stem" else ("--no-baseline",)),
        )
        assert result.returncode == 0, result.stderr + result.stdout
        record = load_json(folder / "manifest.json")["artifacts"]["model.int8.onnx"]
        if ends == "stem":
            baseline = record["baseline"]["sqnr_db"]
            unsplit_quality = record["quality"]["sqnr_db"]
        assert record["graph_forms"]["split_convs_merged"] == 13
        assert record["quality"]["sqnr_db"] >= baseline + 2.0 and record["quality"]["accuracy_drop_points"] <= 0.5
    # the merged graph quantizes like the unsplit build (the split graph itself scores ~3 dB lower)
    unsplit = Path(shutil.copytree(digits_build, tmp_path / "unsplit" / digits_build.name))
    assert quantize_digits(unsplit, digit_folders, "--no-baseline").returncode == 0
    unsplit_figure = load_json(unsplit / "manifest.json")["artifacts"]["model.int8.onnx"]["quality"]["sqnr_db"]
    assert unsplit_quality == pytest.approx(unsplit_figure, abs=0.5)
    assert record["graph_forms"]["stem"] == "space_to_depth"
    assert record["recipe"]["float_ends"] == "none" and record["recipe"]["kept_float"] == []
    graph = onnx.load(str(folder / "model.int8.onnx")).graph
    producers = {output: node for node in graph.node for output in node.output}
    stem = next(node for node in graph.node if node.name == "/conv_stem/Conv")
    assert producers[stem.input[0]].op_type == "DequantizeLinear"  # the stem conv itself is quantized
    assert any(node.op_type == "SpaceToDepth" for node in graph.node)
    assert sum(node.op_type == "Concat" for node in graph.node) == 32  # merged back
    classifier = next(node for node in graph.node if node.name == "/classifier/Gemm")
    assert producers[classifier.input[1]].op_type == "DequantizeLinear"  # int8 weights ...
    assert classifier.output[0] in {output.name for output in graph.output}  # ... and float logits


@pytest.mark.slow  # two full quantizes; CI runs the slow suite too
def test_rerun_gives_the_same_bytes(fresh_build, digit_folders):
    hashes = []
    for _ in range(2):
        result = quantize_digits(fresh_build, digit_folders, "--no-baseline")
        assert result.returncode == 0, result.stderr
        hashes.append(sha(fresh_build / "model.int8.onnx"))
    assert hashes[0] == hashes[1]


def test_calibration_from_npy_with_held_out_evaluation(fresh_build, tmp_path):
    images, labels = digits.split("calib")
    pre = preprocess_config(64)
    array = np.stack([preprocess_image(image, pre, 64) for image in images])
    np.save(tmp_path / "calib.npy", array)
    np.save(tmp_path / "calib.labels.npy", labels)
    result = run_cli("quantize", str(fresh_build), "--calib", str(tmp_path / "calib.npy"), "--no-baseline")
    assert result.returncode == 0, result.stderr
    record = load_json(fresh_build / "manifest.json")["artifacts"]["model.int8.onnx"]
    assert record["calibration"]["samples"] == 150 and record["evaluation"]["samples"] == 50
    assert "held out" in record["evaluation"]["source"] and record["evaluation"]["labelled"]
    assert record["quality"]["verdict"] == "pass"


def test_image_folder_equals_npy_preprocessing(digit_folders):
    """The folder loader and the Pillow transform agree bit for bit (same transform)."""
    from ghostexport.evidence.data import load_dataset

    calib, _ = digit_folders
    loaded = load_dataset(str(calib), preprocess_config(64), (3, 64, 64))
    images, labels = digits.split("calib")
    by_name = sorted(range(len(images)), key=lambda i: (str(labels[i]), f"calib-{i:04d}.png"))
    expected = np.stack([preprocess_image(images[i], preprocess_config(64), 64) for i in by_name])
    np.testing.assert_array_equal(loaded.inputs, expected)
    np.testing.assert_array_equal(loaded.labels, labels[by_name])


@pytest.mark.parametrize("mode, expected", [("fp16", "model.fp16.onnx"), ("int8-dynamic", "model.int8-dynamic.onnx")])
def test_other_modes(mode, expected, fresh_build, digit_folders):
    _, test = digit_folders
    result = run_cli("quantize", str(fresh_build), "--mode", mode, "--eval", str(test))
    assert result.returncode == 0, result.stderr
    record = load_json(fresh_build / "manifest.json")["artifacts"][expected]
    assert record["quality"]["verdict"] == "pass" and record["calibration"] is None
    # the ConvInteger warning belongs to int8-dynamic alone
    assert ("slower than fp32" in result.stdout) == (mode == "int8-dynamic")
    if mode == "fp16":
        assert record["quality"]["mean_cosine"] >= 0.999
        proto = onnx.load(str(fresh_build / expected))
        assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # fp32 I/O kept
    else:
        assert "--mode int8" in result.stdout
        ops = {node.op_type for node in onnx.load(str(fresh_build / expected)).graph.node}
        assert "ConvInteger" in ops


def test_synthetic_default_warns_and_is_not_enforced(fresh_build):
    result = run_cli("quantize", str(fresh_build), "--no-baseline")
    assert result.returncode == 0, result.stderr
    assert "MEANINGLESS" in result.stdout and "NOT ENFORCED" in result.stdout
    record = load_json(fresh_build / "manifest.json")["artifacts"]["model.int8.onnx"]
    assert record["calibration"]["synthetic"] and "MEANINGLESS" in record["calibration"]["warning"]
    assert record["quality"]["verdict"] == "reported" and not record["quality"]["enforced"]


@pytest.mark.slow  # a full quantize round; CI runs the slow suite too
def test_excluded_node_stays_float(fresh_build, digit_folders):
    node = "/blocks/blocks.6/blocks.6.3/se/conv_reduce/Conv"
    result = quantize_digits(fresh_build, digit_folders, "--exclude", node, "--no-baseline")
    assert result.returncode == 0, result.stderr
    graph = onnx.load(str(fresh_build / "model.int8.onnx")).graph
    initializers = {init.name for init in graph.initializer}
    producers = {output: n.op_type for n in graph.node for output in n.output}
    conv = next(n for n in graph.node if n.name == node)
    assert conv.input[1] in initializers  # float weight straight from an initializer: a float Conv
    quantized = next(n for n in graph.node if n.name == "/blocks/blocks.6/blocks.6.4/se/conv_reduce/Conv")
    assert producers[quantized.input[1]] == "DequantizeLinear"  # its twin in the next block is int8
    record = load_json(fresh_build / "manifest.json")["artifacts"]["model.int8.onnx"]
    assert node in record["recipe"]["kept_float"] and record["recipe"]["exclude"] == [node]


@pytest.mark.slow  # full quantize + check round; CI runs the slow suite too
def test_auto_meets_its_target(fresh_build, digit_folders):
    result = quantize_digits(
        fresh_build,
        digit_folders,
        "--method",
        "auto",
        "--target-sqnr",
        "38.5",
        "--max-accuracy-drop",
        "0.5",
        "--no-baseline",
    )
    assert result.returncode == 0, result.stderr + result.stdout
    record = load_json(fresh_build / "manifest.json")["artifacts"]["model.int8.onnx"]
    assert record["quality"]["sqnr_db"] >= 38.5 and record["quality"]["accuracy_drop_points"] <= 0.5
    assert record["auto"]["target_met"] and record["auto"]["methods_tried"] == ["minmax", "entropy", "percentile"]
    kept = record["recipe"]["kept_float"]
    assert 1 < len(kept) < 209  # more than the rule (the stem), far fewer than everything
    assert {"fp32", "int8 (chosen)"} <= set(record["latency"]["runs"])
    assert record["latency"]["runs"]["int8 (chosen)"]["p50_ms"] > 0


def test_missed_gate_is_exit_1_and_writes_nothing(fresh_build, digit_folders):
    manifest_before = (fresh_build / "manifest.json").read_bytes()
    result = quantize_digits(
        fresh_build,
        digit_folders,
        "--target-sqnr",
        "90",
        "--no-baseline",
        "--json",
        "-",
    )
    assert result.returncode == 1
    assert "SQNR" in result.stderr and "< 90" in result.stderr
    assert not (fresh_build / "model.int8.onnx").exists()
    assert (fresh_build / "manifest.json").read_bytes() == manifest_before


def test_stale_parent_is_refused(fresh_build):
    model = onnx.load(str(fresh_build / "model.onnx"))
    model.doc_string = "edited after the build"
    onnx.save(model, str(fresh_build / "model.onnx"))
    result = run_cli("quantize", str(fresh_build))
    assert result.returncode == 2
    assert "stale" in result.stderr and "rebuild" in result.stderr


@pytest.mark.slow  # a quantize with the stock baseline; CI runs the slow suite too
def test_foreign_onnx_with_npy_calibration(digits_build, tmp_path):
    foreign = tmp_path / "net.onnx"
    model = onnx.load(str(digits_build / "model.onnx"))
    del model.metadata_props[:]  # nothing ghostexport-specific left
    for node in model.graph.node:  # and another input name, as foreign exporters write
        node.input[:] = ["images" if name == "input" else name for name in node.input]
    model.graph.input[0].name = "images"
    onnx.save(model, str(foreign))
    images, _ = digits.split("calib")
    np.save(
        tmp_path / "calib.npy", np.stack([preprocess_image(image, preprocess_config(64), 64) for image in images[:64]])
    )
    ok = run_cli("quantize", str(foreign), "--calib", str(tmp_path / "calib.npy"))  # with ORT's stock baseline
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "net.int8.onnx").is_file()
    folder = tmp_path / "imgs"
    folder.mkdir()
    digits.split("calib")[0][0].save(folder / "a.png")
    refused = run_cli("quantize", str(foreign), "--calib", str(folder))
    assert refused.returncode == 2 and "preprocessing" in refused.stderr


@pytest.mark.parametrize(
    "case, expected",
    [
        ("corrupt_image", "cannot read image"),
        ("wrong_shape_npy", "the model takes N×3×64×64"),
        ("missing", "does not exist"),
        ("synthetic_zero", "needs a positive sample count"),
        ("too_few", "too few to hold out"),
        ("below_minimum", "holds 3 samples, fewer than the 8 needed"),
        ("a_build_folder", "holds model artifacts (manifest.json), not data"),
        ("bad_exclude", "no node of that name"),
        ("accuracy_without_labels", "needs labelled evaluation data"),
    ],
)
def test_bad_calibration_inputs_exit_2(case, expected, fresh_build, tmp_path):
    args: list[str] = []
    if case == "corrupt_image":
        folder = tmp_path / "imgs" / "3"
        folder.mkdir(parents=True)
        digits.split("calib")[0][0].save(folder / "good.png")
        (folder / "broken.png").write_bytes(b"\x89PNG not really")
        args = ["--calib", str(tmp_path / "imgs")]
    elif case == "wrong_shape_npy":
        np.save(tmp_path / "c.npy", np.zeros((4, 3, 32, 32), dtype=np.float32))
        args = ["--calib", str(tmp_path / "c.npy")]
    elif case == "missing":
        args = ["--calib", str(tmp_path / "nowhere")]
    elif case == "synthetic_zero":
        args = ["--calib", "synthetic:0"]
    elif case == "too_few":  # enough to calibrate, not to hold a quarter out for evaluation
        np.save(tmp_path / "c.npy", np.zeros((12, 3, 64, 64), dtype=np.float32))
        args = ["--calib", str(tmp_path / "c.npy")]
    elif case == "below_minimum":
        np.save(tmp_path / "c.npy", np.zeros((3, 3, 64, 64), dtype=np.float32))
        args = ["--calib", str(tmp_path / "c.npy")]
    elif case == "a_build_folder":  # it holds a PNG (a plot) beside the model: not calibration images
        shutil.copytree(fresh_build, tmp_path / "folder")
        digits.split("calib")[0][0].save(tmp_path / "folder" / "bench.png")
        args = ["--calib", str(tmp_path / "folder"), "--eval", str(tmp_path / "folder")]
    elif case == "bad_exclude":
        args = ["--exclude", "/conv_stem/Convv"]
    elif case == "accuracy_without_labels":
        args = ["--max-accuracy-drop", "0.5"]
    result = run_cli("quantize", str(fresh_build), *args, "--no-baseline")
    assert result.returncode == 2, result.stderr + result.stdout
    assert expected in result.stderr
    if case == "corrupt_image":
        assert "broken.png" in result.stderr
    if case == "bad_exclude":
        assert "did you mean /conv_stem/Conv" in result.stderr
    assert visible_entries(fresh_build) == ["manifest.json", "model.onnx"]


@pytest.mark.slow  # a second build and quantize; CI runs the slow suite too
def test_static_batch_model_quantizes_and_checks(tmp_path):
    assert (
        run_cli("build", "--width", "0.35", "--resolution", "32", "--batch", "3", "--out", str(tmp_path)).returncode
        == 0
    )
    folder = tmp_path / "ghostnet_035-r32-b3"
    result = run_cli(
        "quantize", str(folder), "--calib", "synthetic:10"
    )  # 10 samples: 4 batches of 3, the last filled from the start
    assert result.returncode == 0, result.stderr + result.stdout
    dims = [d.dim_value for d in onnx.load(str(folder / "model.int8.onnx")).graph.input[0].type.tensor_type.shape.dim]
    assert dims == [3, 3, 32, 32]
    check = run_cli("check", str(folder), "--json", "-")
    assert check.returncode == 0, check.stderr


#: each branch of the int8 type rule, forced by naming its target (a name, not this host's CPU):
#: every verdict below compares with ORT's stock recipe with the same types, both measured by
#: kernels that compute u8×s8 exactly on any host (``exact_int8_kernels``)
TARGET_TYPES = {
    "x86-vnni": ("uint8", "int8", False),
    "x86-avx2": ("uint8", "int8", True),
    "arm64": ("int8", "int8", False),
}


@pytest.fixture
def exact_int8_kernels(monkeypatch):
    """Every ORT session of the test runs u8×s8 products exactly, whatever x86 CPU runs it.

    Without VNNI, ORT's x86 kernels sum pairs of u8×s8 products in 16 bits and saturate, so a
    recipe without ``reduce_range`` would score differently on an AVX2 host than on a VNNI one.
    ORT's ``session.x64quantprecision`` switches those hosts to exact u8×u8 kernels (a no-op on
    VNNI, where the sums are already 32-bit, and on ARM): the figures are then the ones a VNNI
    or ARM device computes, on any machine. Real sessions, one config entry added — not a mock.
    """
    import onnxruntime as ort

    original = ort.InferenceSession

    def exact(model, sess_options=None, *args, **kwargs):
        sess_options = sess_options or ort.SessionOptions()
        sess_options.add_session_config_entry("session.x64quantprecision", "1")
        return original(model, sess_options, *args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", exact)


@pytest.mark.parametrize(
    "target",
    [  # each branch forced by name; its figures are host-independent (``exact_int8_kernels``);
        # x86-avx2 in the default suite, the other two in the slow suite (CI runs both)
        pytest.param("x86-vnni", marks=pytest.mark.slow),
        "x86-avx2",
        pytest.param("arm64", marks=pytest.mark.slow),
    ],
)
def test_each_recipe_branch_beats_the_stock_recipe_with_the_same_types(
    target, fresh_build, digit_folders, exact_int8_kernels
):
    """The recipe's own merit, per branch: ORT's stock recipe with the same types and reduce_range,
    measured by the same exact kernels, is the bar."""
    from ghostexport.stages import quantize as api

    calib, test = digit_folders
    try:
        result = api.quantize(fresh_build, calib=str(calib), eval=str(test), target=target)
    except GateFailed as failure:  # judged below against the same-types baseline, not the absolute bar
        result = failure.result
    record = result.record
    recipe, baseline = record["recipe"], record["baseline"]
    activation, weight, reduce_range = TARGET_TYPES[target]
    assert (recipe["activation_type"], recipe["weight_type"], recipe["reduce_range"]) == (
        activation,
        weight,
        reduce_range,
    )
    assert record["target"] == target and recipe["types_reason"].startswith(f"target {target}: ")
    assert baseline["types"] == f"{activation}/{weight}" + (", reduce_range" if reduce_range else "")
    assert record["quality"]["sqnr_db"] >= baseline["sqnr_db"] + 1.0
    assert record["quality"]["centred_sqnr_db"] >= baseline["centred_sqnr_db"] + 1.0
    assert record["quality"]["accuracy_drop_points"] <= baseline["accuracy_drop_points"] + 0.5


@pytest.mark.slow  # a whole pipeline on real data; CI runs the slow suite too
def test_pipeline_with_only_calib_never_evaluates_on_calibration_images(digit_folders, tmp_path):
    """int8, fp16 and check all measure on the held-out quarter of --calib, and the records say so."""
    calib, _test = digit_folders
    out = tmp_path / "models"
    result = run_cli(
        "pipeline",
        *DIGITS_MODEL,
        "--calib",
        str(calib),
        "--bench-iters",
        "2",
        "--out",
        str(out),
        "--json",
        "-",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    payload = json.loads(result.stdout)
    assert payload["verdict"] == "pass" and all(s["verdict"] == "pass" for s in payload["stages"])
    manifest = load_json(out / "ghostnet_050-c10-r64" / "manifest.json")
    int8, fp16 = manifest["artifacts"]["model.int8.onnx"], manifest["artifacts"]["model.fp16.onnx"]
    assert int8["calibration"]["samples"] == 150 and int8["evaluation"]["samples"] == 50
    for record in (int8, fp16):
        assert record["evaluation"]["source"].endswith("(every 4th, held out)") and record["quality"]["enforced"]
    (entry,) = manifest["checks"]
    assert entry["verdict"] == "pass" and any("held-out quarter" in w for w in entry["warnings"])
    assert {r["samples"] for r in entry["results"]} == {50}
    # every gate passed on real data, so every artifact could be recommended
    selection = manifest["recommended"]
    assert selection["left_out"] == {} and selection["recommended"]["artifact"] in manifest["artifacts"]


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 300), st.one_of(st.none(), st.integers(1, 9)))
def test_calibration_batches_are_equal_and_cover_every_image(count, static_batch):
    """ORT's entropy and percentile calibrators stack every batch into one array, so the batches
    must be the same size (150 images in batches of 8 once crashed ``--method auto``)."""
    from ghostexport.quantization.static import CALIBRATION_BATCH, BatchReader

    inputs = np.arange(count, dtype=np.float32).reshape(count, 1)
    batches = BatchReader(inputs, "input", None, static_batch).batches
    assert len({len(batch) for batch in batches}) == 1
    assert len(batches[0]) == static_batch if static_batch else 1 <= len(batches[0]) <= CALIBRATION_BATCH
    seen = np.concatenate(batches).ravel()
    assert set(seen) == set(range(count))  # every image, a static batch's last one filled from the start
    assert len(seen) == count if static_batch is None else len(seen) < count + static_batch


def test_entropy_calibration_with_an_uneven_image_count(small_build, tmp_path):
    folder = Path(shutil.copytree(small_build, tmp_path / small_build.name))
    result = run_cli("quantize", str(folder), "--calib", "synthetic:30", "--method", "entropy", "--no-baseline")
    assert result.returncode == 0, result.stderr + result.stdout


def test_synthetic_data_never_silently_replaces_an_artifact_verified_on_real_data(fresh_build, digit_folders):
    """A PASS on real data is the folder's evidence: synthetic calibration is refused, unless asked for by name."""
    verified = quantize_digits(fresh_build, digit_folders, "--no-baseline")
    assert verified.returncode == 0, verified.stderr
    before = sha(fresh_build / "model.int8.onnx")
    manifest_before = (fresh_build / "manifest.json").read_bytes()
    refused = run_cli("quantize", str(fresh_build), "--calib", "synthetic:8", "--no-baseline")
    assert refused.returncode == 2, refused.stderr
    assert "passed its quality gate on" in refused.stderr and "--replace-verified" in refused.stderr
    assert refused.stderr.count("\n") == 1
    assert sha(fresh_build / "model.int8.onnx") == before
    assert (fresh_build / "manifest.json").read_bytes() == manifest_before
    replaced = run_cli("quantize", str(fresh_build), "--calib", "synthetic:8", "--no-baseline", "--replace-verified")
    assert replaced.returncode == 0, replaced.stderr
    assert load_json(fresh_build / "manifest.json")["artifacts"]["model.int8.onnx"]["quality"]["verdict"] == "reported"
