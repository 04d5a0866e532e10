"""Bad input and failed gates: one-line errors, the documented exit codes, nothing left behind."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import pytest
import torch
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from ghostexport.model.arch import create_model

from .conftest import SMALL, load_json, run_cli, visible_entries


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.parametrize("width", ["0", "-0.5", "nan", "abc"])
def test_bad_width_exit_2(width, tmp_path):
    result = run_cli("build", "--width", width, "--out", str(tmp_path / "m"))
    assert result.returncode == 2
    assert "width" in result.stderr.lower()
    assert visible_entries(tmp_path / "m") == []


def test_unknown_variant_exit_2(tmp_path):
    result = run_cli("build", "--variant", "resnet50", "--out", str(tmp_path / "m"))
    assert result.returncode == 2 and "resnet50" in result.stderr and "ghostnet" in result.stderr
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--resolution", "8"], "--resolution must be between 32 and 2048"),
        (["--width", "1e9"], "--width must be a number in (0, 8]"),
        (["--batch", "5000"], "integer from 1 to 1024"),
        (["--batch", "0"], "not a positive batch size"),
        (["--batch", "many"], "neither 'dynamic' nor an integer"),
        (["--opset", "9"], "--opset 9 is outside"),
        (["--num-classes", "0"], "--num-classes must be between 1 and 100,000"),
        (["--reset-head"], "--reset-head only applies"),
        (["--weights", "no_such_weights"], "unknown weights 'no_such_weights'"),
    ],
)
def test_bad_options_exit_2(args, expected, tmp_path):
    result = run_cli("build", *SMALL, *args, "--out", str(tmp_path / "m"))
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert visible_entries(tmp_path / "m") == []


def test_out_is_a_file_exit_2(tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")
    result = run_cli("build", *SMALL, "--out", str(blocker / "models"))
    assert result.returncode == 2
    line = one_error_line(result.stderr)
    assert "cannot write to --out" in line and "choose a writable folder" in line
    assert blocker.read_text() == "x"


def test_out_on_read_only_filesystem_exit_2():
    target = "/proc/ghostexport-models"
    if os.access("/proc", os.W_OK) and os.path.exists(target):
        pytest.skip("/proc is writable here")
    result = run_cli("build", *SMALL, "--out", target)
    assert result.returncode == 2
    assert "cannot write to --out /proc/ghostexport-models" in one_error_line(result.stderr)


def test_unwritable_out_as_a_normal_user(tmp_path):
    if os.geteuid() != 0:
        folder = tmp_path / "locked"
        folder.mkdir(mode=0o500)
        result = run_cli("build", *SMALL, "--out", str(folder))
        assert result.returncode == 2 and "cannot write to --out" in result.stderr
    else:
        pytest.skip("root ignores permission bits; the /proc and file cases cover root")


def test_nan_checkpoint_fails_the_gate_exit_1_and_writes_nothing(tmp_path):
    state = create_model("ghostnet", 0.5, 1000, seed=0).state_dict()
    state["blocks.6.0.ghost1.primary_conv.1.running_var"][0] = -1.0  # sqrt(-1): NaN after folding
    checkpoint = tmp_path / "broken.pth"
    torch.save(state, checkpoint)
    out = tmp_path / "models"
    good = run_cli("build", *SMALL, "--out", str(out))  # a previous good build must survive
    assert good.returncode == 0
    before = (out / "ghostnet_050-r64" / "model.onnx").read_bytes()
    result = run_cli(
        "build", *SMALL, "--checkpoint", str(checkpoint), "--out", str(out), "--json", str(tmp_path / "r.json")
    )
    assert result.returncode == 1, result.stderr
    assert "NaN/Inf" in result.stdout
    report = load_json(tmp_path / "r.json")
    assert report["ok"] is False and report["exit_code"] == 1 and report["verdict"] == "fail"
    assert report["manifest"]["artifacts"]["model.onnx"]["parity"]["export"]["reasons"]
    assert (out / "ghostnet_050-r64" / "model.onnx").read_bytes() == before
    assert visible_entries(out) == ["LATEST", "ghostnet_050-r64"]


def test_internal_error_is_exit_3_with_report_hint(monkeypatch):
    import ghostexport.stages.build

    def explode(*_args, **_kwargs):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(ghostexport.stages.build, "build", explode)
    from ghostexport.cli import main

    result = CliRunner().invoke(main, ["build", "--json", "-"])
    assert result.exit_code == 3
    assert "internal error: RuntimeError: simulated bug (run with --verbose and report it)" in result.output
    verbose = CliRunner().invoke(main, ["build", "--verbose"])
    assert verbose.exit_code == 3 and "Traceback" in verbose.output


def test_missing_onnxruntime_names_the_extra(tmp_path):
    code = (
        "import sys; sys.modules['onnxruntime'] = None\n"
        "from ghostexport.runtime.ort import import_onnxruntime\n"
        "from ghostexport.base.errors import UsageError\n"
        "try:\n    import_onnxruntime()\nexcept UsageError as e:\n    print(e)\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "pip install 'ghostexport[cpu]'" in completed.stdout


def test_both_onnxruntime_wheels_are_reported(monkeypatch):
    """Both wheels cannot be installed on a CPU-only CI box, so the metadata lookup is faked."""
    from ghostexport.base.errors import UsageError
    from ghostexport.runtime import ort as runtime

    monkeypatch.setattr(runtime, "installed_ort_distributions", lambda: ["onnxruntime", "onnxruntime-gpu"])
    with pytest.raises(UsageError, match="pip uninstall -y onnxruntime onnxruntime-gpu"):
        runtime.import_onnxruntime()


class _ValidatedOnly(BaseException):  # not an Exception: the CLI must not turn it into exit 3
    """Raised in place of model construction: everything before it (validation) really ran."""


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "--width",
                "--resolution",
                "--batch",
                "--num-classes",
                "--opset",
                "--seed",
                "--reset-head",
                "x",
                "-1",
                "0",
                "1e9",
                "nan",
                "inf",
                "7",
                "dynamic",
                "",
                "--",
            ]
        ),
        max_size=5,
    )
)
def test_malformed_arguments_never_crash(arguments):
    """Whatever the argument soup, the CLI answers exit 2 or reaches model construction."""
    from ghostexport.cli import main
    from ghostexport.folder import reference

    def stop(*_args, **_kwargs):
        raise _ValidatedOnly

    original, cwd = reference.create_model, os.getcwd()
    reference.create_model = stop
    try:
        with tempfile.TemporaryDirectory() as scratch:
            os.chdir(scratch)
            result = CliRunner().invoke(main, ["build", *arguments])
    except _ValidatedOnly:
        return  # valid arguments: the real work would start here
    finally:
        reference.create_model = original
        os.chdir(cwd)
    assert result.exit_code == 2, (arguments, result.output, result.exception)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["info", "--json", "NOWHERE/r.json"], "the folder NOWHERE does not exist"),
        (["info", "--json", "."], "is a folder"),
        (["bench", "--plot", "NOWHERE/b.png"], "the folder NOWHERE does not exist"),
        (["bench", "--plot", "b.gif"], "use a file name ending in .png, .svg, .pdf"),
        (["bench", "--csv", "NOWHERE/b.csv"], "the folder NOWHERE does not exist"),
    ],
)
def test_outputs_that_cannot_be_written_are_refused_up_front(args, message, tmp_path):
    """A result that could not be written is one line, exit 2, before any work — never a traceback after it."""
    folder = tmp_path / "models" / "x"
    folder.mkdir(parents=True)
    args = [str(tmp_path / a) if a.startswith("NOWHERE") else a for a in args]
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message.replace("NOWHERE", str(tmp_path / "NOWHERE")) in one_error_line(result.stderr)
    assert "Traceback" not in result.stderr


def test_an_image_folder_given_as_a_model_is_named_for_what_it_is(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    (images / "a.png").write_bytes(b"")
    result = run_cli("check", str(images))
    assert result.returncode == 2
    line = one_error_line(result.stderr)
    assert "is not a build folder" in line and "--data" in line and "rebuild" not in line
