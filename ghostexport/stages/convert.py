"""``convert --to ort|litert|executorch|openvino``: other runtimes' formats, under the same gates.

``ort`` is ONNX Runtime's mobile format, converted from ``model.onnx`` and checked against it.
``litert`` (``.tflite``) and ``executorch`` (``.pte``, XNNPACK) are converted from the PyTorch
model the folder's manifest rebuilds, ``openvino`` (``.xml`` + ``.bin``) from ``model.onnx``
(``edge``): fp32 gated on parity with PyTorch, int8 (``--precision int8``, calibrated on
``--calib``) gated on quality against PyTorch's fp32 logits on held-out data, exactly like
``quantize``'s int8; an OpenVINO IR at the inference precision it will run at here.

Conversion goes through ORT's own converter (``onnxruntime.tools.convert_onnx_models_to_ort``,
fixed optimisation style), which also writes the ``required_operators`` config for a
reduced-size ORT build. The ``.ort`` model is then loaded and compared with the ``.onnx``
it came from under the fp32 tolerances before anything is written into the folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnx

from ghostexport.base.choices import CONVERT_FORMATS
from ghostexport.base.errors import GateFailed, UsageError
from ghostexport.base.files import atomic_write_bytes
from ghostexport.base.progress import Progress, channel, quiet_libraries
from ghostexport.evidence.parity import FP32_TOLERANCE, parity_over_batches, random_inputs
from ghostexport.evidence.validate import validate_model
from ghostexport.folder.artifacts import artifact_sha256, resolve_model, select_artifacts
from ghostexport.folder.commit import commit_files, scratch_folder
from ghostexport.folder.records import file_record, record_artifact
from ghostexport.render.console import parity_line
from ghostexport.runtime.ort import input_shape, run_logits
from ghostexport.runtime.providers import cpu_session

PARITY_SAMPLES = 8


@dataclass
class ConvertResult:
    path: Path
    config: Path
    record: dict

    def as_json(self) -> dict:
        return {"artifact": str(self.path), "required_operators": str(self.config), "record": self.record}


def convert(
    model: str | Path | None = None,
    to: str = "ort",
    progress: Progress | None = None,
    precision: str = "fp32",
    calib: str | None = None,
    eval: str | None = None,
    float_io: bool = False,
    replace_verified: bool = False,
    inference_precision: str = "auto",
) -> ConvertResult:
    """Convert ``model`` (folder: its model.onnx; or an .onnx) to ``to``, gated, written with its record."""
    say = channel(progress)
    if to not in CONVERT_FORMATS:
        raise UsageError(f"--to {to}: use one of {', '.join(CONVERT_FORMATS)}")
    if to != "ort":
        from ghostexport.edge.convert import convert_edge

        return convert_edge(model, to, precision, calib, eval, float_io, say, replace_verified, inference_precision)
    if precision != "fp32" or calib or eval or float_io or replace_verified or inference_precision != "auto":
        raise UsageError(
            "--precision, --calib, --eval, --float-io, --inference-precision and --replace-verified apply to "
            "--to litert/executorch/openvino, not ort"
        )
    return _convert_ort(model, say)


def _convert_ort(model, say: Progress) -> ConvertResult:
    ref = resolve_model(model)
    ref.whole_folder = False  # a folder means its model.onnx here
    parent = artifact_sha256(ref.path, select_artifacts(ref)[0][2])  # verified, stale refused
    with scratch_folder(ref.home) as work:
        ort_file, config = _convert_in(work, ref.path, say)
        parity = _parity(ref.path, ort_file, say)
        data = ort_file.read_bytes()
        # the converter names the model it read: the scratch copy, which is deleted below
        config_text = _without_scratch_paths(config.read_text(encoding="utf-8"), work).encode("utf-8")
        record = file_record(
            data,
            parent,
            source=ref.path.name,
            format="ort",
            optimization_style="Fixed",
            required_operators=config.name,
            parity=parity,
        )
        target = ref.path.with_name(ort_file.name)
        result = ConvertResult(target, ref.path.with_name(config.name), record)
        if parity["verdict"] != "pass":
            raise GateFailed(f".ort parity gate failed, nothing written: {parity['reasons'][0]}", result)
        if ref.folder is None:
            atomic_write_bytes(target, data)
            atomic_write_bytes(result.config, config_text)
        else:  # the .ort, its operator config and its record land together
            files = {target.name: data, result.config.name: config_text}
            commit_files(ref.folder, files, lambda manifest: record_artifact(manifest, target.name, record))
    say("write", f"{target} and {result.config.name}")
    return result


def _convert_in(work: Path, path: Path, say: Progress) -> tuple[Path, Path]:
    """ORT's own converter on a validated copy in ``work``: the .ort file and its required-operators config."""
    from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort

    source = work / f"{path.stem}.onnx"
    proto = onnx.load(str(path))  # external data (name.onnx.data) is read in, not left behind
    validate_model(proto, path.name)
    onnx.save(proto, str(source))
    out = work / "out"
    out.mkdir()
    with quiet_libraries():
        convert_onnx_models_to_ort(source, output_dir=out, optimization_styles=[OptimizationStyle.Fixed])
    ort_file, config = out / f"{path.stem}.ort", out / f"{path.stem}.required_operators.config"
    if not ort_file.is_file() or not config.is_file():
        raise UsageError(f"ONNX Runtime's converter did not produce {ort_file.name}: is {path} a valid model?")
    say("convert", f"{path.name} -> {ort_file.name} ({ort_file.stat().st_size / 1e6:.1f} MB), {config.name}")
    return ort_file, config


def _parity(onnx_path: Path, ort_file: Path, say: Progress) -> dict:
    """The .ort against the .onnx it came from, under the fp32 tolerance."""
    onnx_session, ort_session = cpu_session(str(onnx_path)), cpu_session(str(ort_file))
    inputs = random_inputs(PARITY_SAMPLES, input_shape(onnx_session)[-1], seed=0)
    reference = run_logits(onnx_session, inputs)
    fixed = ort_session.get_inputs()[0].shape[0]
    batches = (fixed,) if isinstance(fixed, int) else (1, 4)
    parity = parity_over_batches(
        reference, lambda x: run_logits(ort_session, x, len(x)), inputs, batches, FP32_TOLERANCE
    )
    parity["reference"] = onnx_path.name
    say("parity", parity_line(".ort", parity).replace("vs PyTorch", "vs .onnx"))
    return parity


def _without_scratch_paths(config: str, scratch: Path) -> str:
    """The converter's comment names the model by its path in ``scratch``: keep the file name only."""
    return "\n".join(
        line.replace(line[line.index(str(scratch)) :], Path(line[line.index(str(scratch)) :]).name)
        if str(scratch) in line
        else line
        for line in config.splitlines()
    ) + ("\n" if config.endswith("\n") else "")
