"""ONNX → OpenVINO IR with OpenVINO's own converter; int8 by NNCF's post-training quantization.

Unlike LiteRT and ExecuTorch, OpenVINO reads ONNX, so the IR is converted from the folder's
``model.onnx`` (simplified, BatchNorm folded, laid out for the build's target), the artifact
the ONNX int8 is also made from. Weights are saved as they are (``compress_to_fp16=False``):
OpenVINO's default would store them in f16, which is not the fp32 artifact the name promises.

The IR is fixed at batch 1, as the LiteRT and ExecuTorch artifacts are: OpenVINO's CPU plugin
runs a dynamic batch dimension through its dynamic-shape path, measured 1.5× slower at batch 1
on GhostNet 0.5× at 112² (0.84 ms dynamic, 0.56 ms static, bf16, 2-core EPYC).

int8 (``RECIPE_INT8``): NNCF's ``quantize`` on the fp32 IR with the calibration images, batch 1,
every image used (``subset_size``): the performance preset (symmetric activations and weights,
which the CPU plugin's int8 kernels take directly), activation ranges by min/max (NNCF's
default mean-of-minima/maxima clipped GhostNet's activations: measured on GhostNet 0.5× trained on
digits, 19.4 dB logits SQNR against 24.8 dB with min/max) and the stem convolution kept float,
as ``quantize`` keeps it by default (its input is the raw image, with its own range; 24.8 →
29.4 dB).

NNCF's fast bias correction is kept only where it earns its place: the model is quantized with
and without it, and the one whose logits are closer to the fp32 IR's on the calibration images
(SQNR, f32 inference) is written; both figures go in the record. It is worth 0.1 dB on that
GhostNet and cost a torchvision-style ResNet trained on digits 15 dB (13.9 against 29.3 dB),
so neither choice can be fixed in advance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ghostexport.base.progress import quiet_libraries
from ghostexport.runtime.openvino import op_counts, runner, weights_file

RECIPE_INT8 = (
    "nncf.quantize: performance preset (symmetric int8), min/max activation ranges, stem convolution float, "
    "fast bias correction where it raises the calibration SQNR, batch-1 calibration"
)


def convert(onnx_path: Path, xml: Path, images: np.ndarray | None, resolution: int | None = None) -> dict:
    """Write ``xml`` (+ its .bin) from ``onnx_path``; int8 when calibration ``images`` are given. The conversion record.

    With ``resolution``, the input is fixed at batch 1 (``BATCH1``); without, it keeps the ONNX file's shape.
    """
    import openvino as ov

    model = ov.convert_model(str(onnx_path))
    if resolution is not None:
        model.reshape({model.inputs[0]: [1, 3, resolution, resolution]})
    quantization: dict = {}
    if images is not None:
        model, quantization = _quantize(model, images)
    ov.save_model(model, str(xml), compress_to_fp16=False)
    ops = op_counts(xml)
    return {
        "converter": "openvino.convert_model",
        "source": onnx_path.name,
        "input_shape": [d.get_length() if d.is_static else -1 for d in model.inputs[0].get_partial_shape()],
        "weights": weights_file(xml).name,
        "compress_to_fp16": False,
        "ops": ops,
        "quantized_ops": ops.get("FakeQuantize", 0),
        "recipe": RECIPE_INT8 if images is not None else "fp32",
        **({"calibration_samples": len(images), **quantization} if images is not None else {}),
    }


def _quantize(model, images: np.ndarray) -> tuple[object, dict]:
    """(int8 model, how it was made): NNCF with ``RECIPE_INT8``'s settings, bias correction as measured."""
    from ghostexport.evidence.comparison import sqnr_db

    convolutions = [op.get_friendly_name() for op in model.get_ordered_ops() if op.get_type_name() == "Convolution"]
    kept_float = convolutions[:1]  # the stem
    batches = [image[None].astype(np.float32) for image in images]
    # compared in f32: the comparison is of the quantization alone
    reference = runner(model, precision="f32")(images)
    candidates = {corrected: _nncf_int8(model.clone(), batches, kept_float, corrected) for corrected in (True, False)}
    figures = {
        corrected: sqnr_db(reference, runner(int8, precision="f32")(images)) for corrected, int8 in candidates.items()
    }
    corrected = figures[True] >= figures[False]
    return candidates[corrected], {
        "kept_float": kept_float,
        "bias_correction": {
            "kept": "fast" if corrected else "none",
            "calibration_sqnr_db": {"fast": round(figures[True], 3), "none": round(figures[False], 3)},
        },
    }


def _nncf_int8(model, batches: list[np.ndarray], kept_float: list[str], bias_correction: bool):
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    with quiet_libraries():
        return nncf.quantize(
            model,
            nncf.Dataset(batches),
            preset=nncf.QuantizationPreset.PERFORMANCE,
            subset_size=len(batches),
            fast_bias_correction=True,
            ignored_scope=nncf.IgnoredScope(names=kept_float) if kept_float else None,
            advanced_parameters=AdvancedQuantizationParameters(
                activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX,
                disable_bias_correction=not bias_correction,
            ),
        )
