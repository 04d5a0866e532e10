"""The manifest's typed model: the JSON Schema generated from it is closed and published by
``info --schema``, every manifest a command writes follows it (conftest checks each test's
tmp_path too), and a manifest that breaks it is refused in one line naming the key."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest

from ghostexport.folder.manifest import manifest_problem, manifest_schema, read_manifest
from ghostexport.stages.bench import bench
from ghostexport.stages.check import check

from .conftest import run_cli


def test_a_folder_after_every_command_follows_the_schema(quantized_build, tmp_path):
    """Build, int8, fp16, check, bench and the selection: every kind of record, validated both ways."""
    folder = Path(shutil.copytree(quantized_build, tmp_path / quantized_build.name))
    check(folder)
    bench([folder], iterations=2, warmup=0)
    assert run_cli("bench", str(folder), "--select", "--select-seconds", "1").returncode == 0
    manifest = json.loads((folder / "manifest.json").read_text())
    jsonschema.Draft202012Validator(manifest_schema()).validate(manifest)
    assert manifest_problem(manifest) is None
    assert {"model.onnx", "model.int8.onnx", "model.fp16.onnx"} <= set(manifest["artifacts"])
    assert manifest["checks"] and manifest["benchmarks"] and manifest["recommended"]["recommended"]
    int8 = manifest["artifacts"]["model.int8.onnx"]
    assert {"recipe", "calibration", "evaluation", "quality", "validation"} <= set(int8)
    assert {"export", "parity"} <= set(manifest["artifacts"]["model.onnx"])


def _objects(node):
    """Every object schema in ``node``, however deeply nested."""
    if isinstance(node, dict):
        if node.get("type") == "object":
            yield node
        for value in node.values():
            yield from _objects(value)
    elif isinstance(node, list):
        for value in node:
            yield from _objects(value)


def test_the_schema_is_closed_everywhere():
    """Every record with named keys forbids others; a map (file names, op counts) types its values."""
    objects = list(_objects(manifest_schema()))
    assert len(objects) > 40
    records = [o for o in objects if "properties" in o]
    assert records and all(o.get("additionalProperties") is False for o in records)
    maps = [o for o in objects if "properties" not in o]
    assert maps and all(isinstance(o.get("additionalProperties"), dict) for o in maps)


def test_the_schema_can_fail(quantized_build):
    """A wrong value and an unknown key, anywhere the schema covers, are rejected by it and by the reader."""
    manifest = json.loads((quantized_build / "manifest.json").read_text())
    manifest["artifacts"]["model.int8.onnx"]["quality"]["verdict"] = "fine"
    errors = list(jsonschema.Draft202012Validator(manifest_schema()).iter_errors(manifest))
    assert errors and errors[0].message.startswith("'fine' is not one of")
    assert manifest_problem(manifest).startswith("artifacts.model.int8.onnx.quality.verdict:")
    manifest = json.loads((quantized_build / "manifest.json").read_text())
    manifest["artifacts"]["model.onnx"]["parity"]["surprise"] = 1
    assert manifest_problem(manifest) == "unknown key 'surprise' at artifacts.model.onnx.parity"
    assert list(jsonschema.Draft202012Validator(manifest_schema()).iter_errors(manifest))


@pytest.mark.parametrize(
    ("where", "key"),
    [((), "surprise"), (("model",), "colour"), (("model", "preprocess"), "gamma"), (("environment",), "gpu")],
)
def test_a_manifest_with_an_unknown_key_is_refused_in_one_line(quantized_build, tmp_path, where, key):
    folder = Path(shutil.copytree(quantized_build, tmp_path / quantized_build.name))
    manifest = json.loads((folder / "manifest.json").read_text())
    node = manifest
    for part in where:
        node = node[part]
    node[key] = True
    (folder / "manifest.json").write_text(json.dumps(manifest))
    before = (folder / "manifest.json").read_bytes()
    result = run_cli("check", str(folder))
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert f"unknown key '{key}'" in lines[0] and "rebuild the folder" in lines[0]
    assert ".".join(where) in lines[0]
    assert (folder / "manifest.json").read_bytes() == before  # refused, nothing rewritten
    with pytest.raises(Exception, match=key):
        read_manifest(folder)


def test_info_prints_the_schema():
    result = run_cli("info", "--schema")
    assert result.returncode == 0 and json.loads(result.stdout) == manifest_schema()
    jsonschema.Draft202012Validator.check_schema(manifest_schema())
