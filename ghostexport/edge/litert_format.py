"""LiteRT ``.tflite`` through litert-torch: fp32, and int8 through PT2E (litert-torch's quantizer).

int8 is static, symmetric, per-channel weights (``get_symmetric_quantization_config``).
Such a model takes int8 input and gives int8 output; the runner quantizes float images with
the input tensor's own scale and zero point and dequantizes the logits, as an app must, so the
same float evidence applies. ``float_io`` keeps the input and output float instead: litert-torch
0.10 has no option for it, so the model is wrapped in ``FloatEnds`` — relu(x) − relu(−x), which
is x exactly and which the PT2E quantizer leaves unannotated — at both ends, and the converter
then places the quantize and dequantize inside the model. The record names the I/O types.
"""

from __future__ import annotations

import numpy as np
import torch

from ghostexport.edge.prepare import calibrate, export_batch1
from ghostexport.runtime.litert import io_types

RECIPE_INT8 = "PT2E static int8: symmetric per-channel weights, per-tensor activations (litert-torch PT2EQuantizer)"


def convert(
    model: torch.nn.Module, resolution: int, calibration: np.ndarray | None, float_io: bool = False
) -> tuple[bytes, dict]:
    """(``.tflite`` bytes, record); int8 when ``calibration`` images are given."""
    import litert_torch

    if float_io:
        model = FloatEnds(model)
    program, removed = export_batch1(model, resolution)
    module, options = program.module(), {}
    if calibration is not None:
        from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
        from litert_torch.quantize.quant_config import QuantConfig
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

        quantizer = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
        prepared = prepare_pt2e(module, quantizer)
        calibrate(prepared, calibration)
        module = convert_pt2e(prepared, fold_quantize=False)
        options["quant_config"] = QuantConfig(pt2e_quantizer=quantizer)
    example = (torch.zeros(1, 3, resolution, resolution),)
    edge = litert_torch.convert(module, example, **options)
    data = _serialized(edge)
    io = io_types(data)
    return data, {"noop_aliases_removed": removed, "io": io}


class FloatEnds(torch.nn.Module):
    """``model`` between two exact identities the quantizer leaves float: the int8 model's I/O stays float."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    @staticmethod
    def identity(x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x) - torch.relu(-x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.identity(self.model(self.identity(x)))


def _serialized(edge) -> bytes:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "model.tflite"
        edge.export(str(path))
        return path.read_bytes()
