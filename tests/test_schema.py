"""The published manifest schema: it ships in the package, `info --schema` prints it, and the
manifests every command writes follow it (conftest checks each test's tmp_path too)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema

from ghostexport.folder.manifest import manifest_schema
from ghostexport.stages.bench import bench
from ghostexport.stages.check import check

from .conftest import run_cli


def test_a_folder_after_every_command_follows_the_schema(quantized_build, tmp_path):
    folder = Path(shutil.copytree(quantized_build, tmp_path / quantized_build.name))
    check(folder)
    bench([folder], iterations=2, warmup=0)
    manifest = json.loads((folder / "manifest.json").read_text())
    jsonschema.Draft202012Validator(manifest_schema()).validate(manifest)
    assert {"model.onnx", "model.int8.onnx", "model.fp16.onnx"} <= set(manifest["artifacts"])
    assert manifest["checks"] and manifest["benchmarks"]


def test_the_schema_can_fail(quantized_build):
    """A manifest with a wrong type somewhere the schema covers is rejected by it."""
    manifest = json.loads((quantized_build / "manifest.json").read_text())
    manifest["artifacts"]["model.int8.onnx"]["quality"]["verdict"] = "fine"
    errors = list(jsonschema.Draft202012Validator(manifest_schema()).iter_errors(manifest))
    assert errors and errors[0].message.startswith("'fine' is not one of")


def test_info_prints_the_schema():
    result = run_cli("info", "--schema")
    assert result.returncode == 0 and json.loads(result.stdout) == manifest_schema()
    jsonschema.Draft202012Validator.check_schema(manifest_schema())
