"""FP16 weights and compute with fp32 inputs and outputs (ORT's float16 converter)."""

from __future__ import annotations

from pathlib import Path

import onnx


def convert_fp16(fp32_path: Path, output: Path) -> Path:
    """Keep the I/O in fp32 (``keep_io_types``) so callers feed the same arrays as before.

    The converter appends the input/output Casts at the end of the node list, which ONNX
    forbids (nodes must be topologically sorted) although ORT tolerates it; ORT's own
    ``OnnxModel.topological_sort`` puts them back in order.
    """
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = OnnxModel(convert_float_to_float16(onnx.load(str(fp32_path)), keep_io_types=True))
    model.topological_sort()
    onnx.save(model.model, str(output))
    return output
