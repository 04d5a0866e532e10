"""Dynamic INT8: weights quantized ahead of time, activations per inference (ConvInteger).

It needs no calibration data, but ORT's CPU build runs ConvInteger models several times
slower than fp32 for CNNs (GhostNet 1.0×, 224², measured here: 4.7× at batch 1, 7.3× at
batch 8): offered for completeness and for runtimes that only accept it, never for speed.
"""

from __future__ import annotations

from pathlib import Path

SLOW_WARNING = (
    "int8-dynamic (ConvInteger) runs GhostNet ~5× slower than fp32 on ONNX Runtime's CPU build; "
    "use --mode int8 (static, calibrated) for speed"
)


def quantize_int8_dynamic(fp32_path: Path, output: Path, per_channel: bool, reduce_range: bool) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from ghostexport.base.progress import quiet_libraries

    with quiet_libraries():
        quantize_dynamic(
            str(fp32_path), str(output), weight_type=QuantType.QInt8, per_channel=per_channel, reduce_range=reduce_range
        )
    return output
