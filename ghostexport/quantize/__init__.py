"""Quantization: static INT8 (QDQ), FP16 and dynamic INT8, each in its own module.

``api.quantize`` is the entry point; ``recipe`` chooses types and float layers,
``static``/``fp16``/``dynamic`` wrap onnxruntime's tools, ``auto`` searches recipes.
"""

from .api import ARTIFACT_NAMES, MODES, QuantizeResult, quantize

__all__ = ["ARTIFACT_NAMES", "MODES", "QuantizeResult", "quantize"]
