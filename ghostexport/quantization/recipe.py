"""The int8 recipe: its settings, and the layers kept in float by rule.

The data types come from the target's CPU class (``targets.types_for_cpu``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import onnx

from ghostexport.base.choices import FLOAT_ENDS, METHODS
from ghostexport.targets.profiles import types_for_cpu

__all__ = ["FLOAT_ENDS", "METHODS", "Recipe", "float_end_nodes", "types_for_cpu"]


@dataclass
class Recipe:
    method: str = "minmax"
    activation_type: str = "uint8"
    weight_type: str = "int8"
    per_channel: bool = True
    reduce_range: bool = False
    float_ends: str = "stem"  # one of FLOAT_ENDS
    shared_concat_scales: bool = True  # one range for each Concat's inputs and output
    exclude: list[str] = field(default_factory=list)  # user's --exclude
    kept_float: list[str] = field(default_factory=list)  # everything excluded, resolved
    types_reason: str = ""
    preprocessed: bool = True  # quant_pre_process ran first
    format: str = "QDQ"

    def as_dict(self) -> dict:
        return asdict(self)


def float_end_nodes(proto: onnx.ModelProto, which: str = "stem") -> list[str]:
    """The stem conv (it quantizes the raw image) and/or the classifier, found by graph structure.

    Measured on the digits model, logits kept float in every case (README): stem float
    37.44 dB logits SQNR (the default), both ends 37.56 dB, the classifier only 36.60 dB,
    neither 36.55 dB; ORT's stock recipe 33.82 dB. On GhostNet 1.0× at 224² (1 thread) the
    int8 classifier saves ~4% of the run against a float one, and a quantized stem in its
    space-to-depth form (``forms.stem_space_to_depth``) another ~6%: "none" is the fast
    choice. Keeping the 1×1 head conv float too adds only +0.04 dB for twice the float
    weights, so it is always quantized.
    """
    if which == "none":
        return []
    graph_input = proto.graph.input[0].name
    stem = [node.name for node in proto.graph.node if node.op_type == "Conv" and graph_input in node.input[:1]]
    outputs = {output.name for output in proto.graph.output}
    classifier = [
        node.name for node in proto.graph.node if node.op_type in ("Gemm", "MatMul") and set(node.output) & outputs
    ]
    chosen = (stem if which in ("both", "stem") else []) + (classifier if which in ("both", "classifier") else [])
    return [name for name in chosen if name]
