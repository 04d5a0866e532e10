"""FP16 weights and compute with fp32 inputs and outputs (ORT's float16 converter)."""

from __future__ import annotations

from pathlib import Path

import onnx


def convert_fp16(fp32_path: Path, output: Path) -> Path:
    """Keep the I/O in fp32 (``keep_io_types``) so callers feed the same arrays as before."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(fp32_path)), keep_io_types=True)
    onnx.save(model, str(output))
    return output
