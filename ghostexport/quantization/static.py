"""Static INT8 (QDQ) through onnxruntime.quantization, with calibration computed once per method.

``quant_pre_process`` (shape inference + ORT's basic graph optimisation) runs once; each
calibration method's tensor ranges are cached (ORT's ``calibration_cache_path``), so the
auto search re-quantizes with other exclusions without re-running calibration.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import onnx

from ghostexport.base.errors import UsageError
from ghostexport.base.progress import quiet_libraries
from ghostexport.graph import merge_split_convs
from ghostexport.quantization.forms import stem_space_to_depth
from ghostexport.quantization.recipe import Recipe

CALIBRATION_BATCH = 8
_METHODS = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}
_TYPES = {"uint8": "QUInt8", "int8": "QInt8"}


class BatchReader:
    """Feeds calibration batches to ORT's calibrator and reports progress."""

    def __init__(
        self,
        inputs: np.ndarray,
        input_name: str,
        on_batch: Callable[[int, int], None] | None,
        static_batch: int | None = None,
    ) -> None:
        if static_batch:  # a fixed-batch model takes exactly that many: wrap around to fill the last one
            count = -(-len(inputs) // static_batch) * static_batch
            order = np.resize(np.arange(len(inputs)), count)
            self.batches = [inputs[order[i : i + static_batch]] for i in range(0, count, static_batch)]
        else:  # equal batches: ORT's histogram calibrators (entropy, percentile) stack them into one array
            size = max(d for d in range(1, CALIBRATION_BATCH + 1) if len(inputs) % d == 0)
            self.batches = [inputs[i : i + size] for i in range(0, len(inputs), size)]
        self.input_name, self.on_batch, self.position = input_name, on_batch, 0

    def get_next(self) -> dict | None:
        if self.position >= len(self.batches):
            return None
        batch = self.batches[self.position]
        self.position += 1
        if self.on_batch:
            self.on_batch(self.position, len(self.batches))
        return {self.input_name: batch}

    def __iter__(self) -> Iterator[dict]:  # qdq_loss_debug iterates instead of calling get_next
        while (feed := self.get_next()) is not None:
            yield feed


class Int8Quantizer:
    """Quantizes one fp32 model repeatedly (methods, exclusions) inside ``work_dir``."""

    def __init__(self, fp32_path: Path, calibration: np.ndarray, work_dir: Path, on_batch=None) -> None:
        from onnxruntime.quantization import quant_pre_process

        self.work_dir = work_dir
        self.calibration = calibration
        self.on_batch = on_batch
        self.preprocessed = work_dir / "preprocessed.onnx"
        source, self.merged_convs = merge_split_convs(onnx.load(str(fp32_path)))
        if self.merged_convs:
            fp32_path = work_dir / "merged.onnx"
            onnx.save(source, str(fp32_path))
        with quiet_libraries():
            quant_pre_process(str(fp32_path), str(self.preprocessed))
        self.proto = onnx.load(str(self.preprocessed))
        self.float_logits = logits_from_matmuls_only(self.proto)
        self.stem_form = stem_space_to_depth(self.proto)
        self.stem_path = work_dir / "preprocessed-stem-s2d.onnx"
        if self.stem_form is not None:
            onnx.save(self.stem_form.model, str(self.stem_path))
        self.input_name = self.proto.graph.input[0].name
        self.static_batch = static_batch_of(self.proto)
        self.node_names = {node.name for node in self.proto.graph.node}

    def check_nodes(self, names: list[str]) -> None:
        """Exit 2 for ``--exclude`` names the graph does not have, suggesting close ones."""
        import difflib

        for name in names:
            if name not in self.node_names:
                close = difflib.get_close_matches(name, self.node_names, n=3, cutoff=0.5)
                hint = f"; did you mean {', '.join(close)}?" if close else "; ghostexport info MODEL lists node names"
                raise UsageError(f"--exclude {name}: no node of that name in the graph{hint}")

    def stem_in_int8_form(self, kept_float: list[str]) -> bool:
        """Whether the stem is quantized, and so quantized in its space-to-depth form."""
        return self.stem_form is not None and self.stem_form.stem not in kept_float

    def forms(self, kept_float: list[str]) -> dict:
        """The int8-only rewrites a quantization with ``kept_float`` used (for the manifest)."""
        return {
            "split_convs_merged": self.merged_convs,
            "stem": "space_to_depth" if self.stem_in_int8_form(kept_float) else "as built",
            "float_logits": self.float_logits,
        }

    def quantize(self, recipe: Recipe, kept_float: list[str], output: Path) -> Path:
        cache = self.work_dir / f"calibration-{recipe.method}.json"
        stem_form = self.stem_in_int8_form(kept_float)
        overrides: dict = {}
        if (recipe.shared_concat_scales or stem_form) and not cache.is_file():
            # calibrate once on the graph as built (this run fills the cache), then quantize with overrides
            self._quantize_static(self.preprocessed, recipe, kept_float, self.work_dir / "calibration-pass.onnx", cache)
        if recipe.shared_concat_scales:
            overrides.update(shared_concat_ranges(self.proto, cache))
        if stem_form:  # SpaceToDepth only moves values: its output takes the calibrated input's range
            import json

            cache_data = json.loads(cache.read_text())
            cache_data["data"][self.stem_form.tensor] = cache_data["data"][self.input_name]
            cache = self.work_dir / f"calibration-{recipe.method}-stem-s2d.json"
            cache.write_text(json.dumps(cache_data))
        source = self.stem_path if stem_form else self.preprocessed
        return self._quantize_static(source, recipe, kept_float, output, cache, overrides)

    def _quantize_static(
        self, source: Path, recipe: Recipe, kept_float, output: Path, cache: Path, overrides: dict | None = None
    ) -> Path:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

        reader = (
            None
            if cache.is_file()
            else BatchReader(self.calibration, self.input_name, self.on_batch, self.static_batch)
        )
        with quiet_libraries():
            quantize_static(
                str(source),
                str(output),
                reader,
                quant_format=QuantFormat.QDQ,
                per_channel=recipe.per_channel,
                reduce_range=recipe.reduce_range,
                activation_type=getattr(QuantType, _TYPES[recipe.activation_type]),
                weight_type=getattr(QuantType, _TYPES[recipe.weight_type]),
                nodes_to_exclude=list(kept_float),
                calibrate_method=getattr(CalibrationMethod, _METHODS[recipe.method]),
                calibration_cache_path=str(cache),
                extra_options={
                    **({"TensorQuantOverrides": overrides} if overrides else {}),
                    **({"OpTypesToExcludeOutputQuantization": list(FLOAT_OUTPUT_OPS)} if self.float_logits else {}),
                },
            )
        return output


#: ops whose int8 output stays float when they produce the logits (QGemm then writes fp32)
FLOAT_OUTPUT_OPS = ("Gemm", "MatMul")


def logits_from_matmuls_only(proto: onnx.ModelProto) -> bool:
    """True when every Gemm/MatMul writes a graph output: the classifier, and nothing else.

    ORT's option to leave an op's output unquantized applies per op type, so it is used only
    when that op type is the classifier alone. Quantizing the logits themselves to 8 bits was
    most of what a quantized classifier cost: on the digits model the int8 classifier with
    float logits gives 37.44 dB (stem float) against 37.56 dB for a float classifier, where
    8-bit logits gave ~36.8 dB.
    """
    outputs = {output.name for output in proto.graph.output}
    matmuls = [node for node in proto.graph.node if node.op_type in FLOAT_OUTPUT_OPS]
    return bool(matmuls) and all(set(node.output) <= outputs for node in matmuls)


def shared_concat_ranges(proto: onnx.ModelProto, cache: Path) -> dict:
    """One calibrated range for both halves of every Concat and its output.

    With equal scales and zero points on all sides, ORT's QLinearConcat is a plain copy
    instead of a requantization (measured ~6–10% of GhostNet's int8 latency), and on the
    digits model the shared, wider range also raised logits SQNR by 1.4 dB.
    """
    ranges = calibrated_ranges(cache)
    overrides: dict = {}
    for node in proto.graph.node:
        if node.op_type != "Concat":
            continue
        names = [name for name in [*node.input, *node.output] if name in ranges]
        if len(names) < 2:
            continue
        low = min(ranges[name][0] for name in names)
        high = max(ranges[name][1] for name in names)
        for name in names:
            overrides[name] = [{"rmin": np.array(low, dtype=np.float32), "rmax": np.array(high, dtype=np.float32)}]
    return overrides


def calibrated_ranges(cache: Path) -> dict[str, tuple[float, float]]:
    """(lowest, highest) per tensor from ORT's calibration cache."""
    import json

    data = json.loads(cache.read_text())["data"]
    return {name: (_scalar(value["lowest"]), _scalar(value["highest"])) for name, value in data.items()}


def _scalar(value) -> float:
    """A calibration-cache number: ``{"data": [x], "CLS": "numpy.array"}``, ``[x]`` or ``x``."""
    if isinstance(value, dict):
        value = value["data"]
    while isinstance(value, list):
        value = value[0]
    return float(value)


def static_batch_of(proto: onnx.ModelProto) -> int | None:
    """The fixed batch size of the model's input, or None when it is dynamic."""
    dim = proto.graph.input[0].type.tensor_type.shape.dim[0]
    return dim.dim_value if dim.HasField("dim_value") and dim.dim_value > 0 else None
