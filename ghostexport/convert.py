"""``convert --to ort``: ONNX Runtime's mobile (ORT) format, checked against its ONNX.

Conversion goes through ORT's own converter (``onnxruntime.tools.convert_onnx_models_to_ort``,
fixed optimisation style), which also writes the ``required_operators`` config for a
reduced-size ORT build. The ``.ort`` model is then loaded and compared with the ``.onnx``
it came from under the fp32 tolerances before anything is written into the folder.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import onnx

from .artifacts import artifact_sha256, resolve_model, select_artifacts
from .commit import commit_files, scratch_folder
from .errors import GateFailed, UsageError
from .files import atomic_write_bytes
from .parity import FP32_TOLERANCE, parity_over_batches, random_inputs
from .providers import cpu_session
from .runtime import input_shape, quiet_ort, run_logits
from .validate import validate_model

FORMATS = ("ort",)
PARITY_SAMPLES = 8


@dataclass
class ConvertResult:
    path: Path
    config: Path
    record: dict

    def as_json(self) -> dict:
        return {"artifact": str(self.path), "required_operators": str(self.config), "record": self.record}


def convert(
    model: str | Path | None = None, to: str = "ort", progress: Callable[[str, str], None] | None = None
) -> ConvertResult:
    report = progress or (lambda stage, detail: None)
    if to not in FORMATS:
        raise UsageError(f"--to {to}: only 'ort' (ONNX Runtime's mobile format) is supported")
    from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort

    ref = resolve_model(model)
    ref.whole_folder = False  # a folder means its model.onnx here
    record = select_artifacts(ref)[0][2]  # verified, stale refused
    parent = artifact_sha256(ref.path, record)
    stem = ref.path.stem
    with scratch_folder(ref.home) as work:
        source = work / f"{stem}.onnx"
        proto = onnx.load(str(ref.path))  # external data (name.onnx.data) is read in, not left behind
        validate_model(proto, ref.path.name)
        onnx.save(proto, str(source))
        out = work / "out"
        out.mkdir()
        with quiet_ort():
            convert_onnx_models_to_ort(source, output_dir=out, optimization_styles=[OptimizationStyle.Fixed])
        ort_file, config = out / f"{stem}.ort", out / f"{stem}.required_operators.config"
        if not ort_file.is_file() or not config.is_file():
            raise UsageError(f"ONNX Runtime's converter did not produce {ort_file.name}: is {ref.path} a valid model?")
        report("convert", f"{ref.path.name} -> {ort_file.name} ({ort_file.stat().st_size / 1e6:.1f} MB), {config.name}")

        onnx_session = cpu_session(str(ref.path))
        ort_session = cpu_session(str(ort_file))
        inputs = random_inputs(PARITY_SAMPLES, input_shape(onnx_session)[-1], seed=0)
        reference = run_logits(onnx_session, inputs)
        fixed = ort_session.get_inputs()[0].shape[0]
        batches = (fixed,) if isinstance(fixed, int) else (1, 4)
        parity = parity_over_batches(
            reference, lambda x: run_logits(ort_session, x, len(x)), inputs, batches, FP32_TOLERANCE
        )
        parity["reference"] = ref.path.name
        report(
            "parity",
            f".ort vs .onnx at batch {','.join(map(str, batches))}: max |Δ| {parity['max_abs']:.2e} -> {parity['verdict'].upper()}",
        )
        data = ort_file.read_bytes()
        # the converter names the model it read: the scratch copy, which is deleted below
        config_text = _without_scratch_paths(config.read_text(encoding="utf-8"), work).encode("utf-8")
        record = {
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
            "parent": parent,
            "source": ref.path.name,
            "format": "ort",
            "optimization_style": "Fixed",
            "required_operators": config.name,
            "parity": parity,
        }
        target = ref.path.with_name(ort_file.name)
        result = ConvertResult(target, ref.path.with_name(config.name), record)
        if parity["verdict"] != "pass":
            raise GateFailed(f".ort parity gate failed, nothing written: {parity['reasons'][0]}", result)
        if ref.folder is None:
            atomic_write_bytes(target, data)
            atomic_write_bytes(result.config, config_text)
        else:  # the .ort, its operator config and its record land together
            commit_files(
                ref.folder,
                {target.name: data, result.config.name: config_text},
                lambda manifest: manifest["artifacts"].__setitem__(target.name, record),
            )
    report("write", f"{target} and {result.config.name}")
    return result


def _without_scratch_paths(config: str, scratch: Path) -> str:
    """The converter's comment names the model by its path in ``scratch``: keep the file name only."""
    return "\n".join(
        line.replace(line[line.index(str(scratch)) :], Path(line[line.index(str(scratch)) :]).name)
        if str(scratch) in line
        else line
        for line in config.splitlines()
    ) + ("\n" if config.endswith("\n") else "")
