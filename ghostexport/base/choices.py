"""Every closed set of values a user may pass, and the defaults that several floors share, once.

The spec dataclasses (``stages.specs``) validate against these, the CLI builds its
``click.Choice`` lists from them, and the modules that act on a value (the exporter, the
quantizer, the provider chain) import it from here, so a new exporter or calibration method
is one edit. Importing this module costs nothing: no torch, no onnx.
"""

from __future__ import annotations

#: the largest static batch a build may export, and the largest batch check and bench may run
MAX_BATCH = 1024
#: the opsets each exporter writes correctly (torch.onnx's TorchScript and dynamo exporters)
OPSET_RANGE = {"torchscript": (13, 20), "dynamo": (18, 23)}
EXPORTERS = tuple(OPSET_RANGE)
DEFAULT_OPSET = 17
#: channel blocks a GhostNet v1 build may pad to (0: no padding; 8: AVX2's NCHWc block; 16: AVX-512's)
ALIGNMENTS = (0, 8, 16)
QUANTIZE_MODES = ("int8", "fp16", "int8-dynamic")
#: int8 calibration methods (ORT's calibrators); ``auto`` searches them and the float layers
METHODS = ("minmax", "entropy", "percentile")
#: which ends of the network stay float (the logits always do: see quantize.static)
FLOAT_ENDS = ("both", "stem", "classifier", "none")
#: the execution providers by their short names
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}
PROVIDER_NAMES = tuple(PROVIDERS)
CUDNN_ALGO_SEARCH = ("HEURISTIC", "EXHAUSTIVE", "DEFAULT")
#: GhostNet's variants (``model.arch.VARIANTS`` builds each)
VARIANT_NAMES = ("ghostnet", "ghostnetv2", "ghostnetv3")
SIMPLIFIERS = ("onnxsim", "onnxslim", "none")
#: what ``convert --to`` writes, and at which precisions
EDGE_RUNTIME_NAMES = ("litert", "executorch", "openvino")
EDGE_PRECISIONS = ("fp32", "int8")
CONVERT_FORMATS = ("ort", *EDGE_RUNTIME_NAMES)
#: OpenVINO's inference precision (``convert --to openvino --inference-precision``): ``auto`` is the
#: CPU plugin's own choice (bf16 on CPUs with bf16 instructions, f32 elsewhere)
INFERENCE_PRECISIONS = ("auto", "f32", "bf16", "f16")
