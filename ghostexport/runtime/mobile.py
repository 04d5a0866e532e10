"""ORT Mobile: how much of a model the NNAPI (Android) and CoreML (iOS) execution providers take.

The estimate is ONNX Runtime's own (``onnxruntime.tools.mobile_helpers.usability_checker``,
what ``python -m onnxruntime.tools.check_onnx_model_mobile_usability`` prints): the model
is optimised to the BASIC level as the ORT-format conversion does, shapes are inferred, and
each EP's supported-operator list says which nodes it takes and into how many partitions
the graph splits (every partition boundary is a copy between the EP and the CPU). One
partition covering every node is the goal; a dynamic batch makes every node unsupported.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import onnx

#: the EPs that ORT Mobile's checker estimates, and the checker's supported-operator list for each
MOBILE_EPS = {
    "NNAPI": None,
    "CoreML MLProgram": "coreml_supported_mlprogram_ops.md",
    "CoreML NeuralNetwork": "coreml_supported_neuralnetwork_ops.md",
}


def mobile_usability(model: onnx.ModelProto) -> dict:
    """Per EP: nodes, supported nodes, partitions and the unsupported op types, with fixed input sizes required."""
    from onnxruntime.tools.mobile_helpers import usability_checker as checker

    with tempfile.TemporaryDirectory(prefix="ghostexport-mobile-") as scratch:
        source, optimized = Path(scratch) / "model.onnx", Path(scratch) / "optimized.onnx"
        onnx.save(model, str(source))
        logging.getLogger("usability_checker").setLevel(logging.WARNING)
        checker.optimize_model(source, optimized, use_external_initializers=True)
        shaped = checker.ModelProtoWithShapeInfo(optimized).model_with_shape_info
        found = {}
        for ep, config in MOBILE_EPS.items():
            info = (
                checker.check_nnapi_partitions(shaped, True)
                if config is None
                else checker.check_coreml_partitions(shaped, True, config)
            )
            found[ep] = {
                "nodes": info.num_nodes,
                "supported_nodes": info.num_supported_nodes,
                "partitions": info.num_partitions,
                "unsupported_ops": sorted(info.unsupported_ops),
                "verdict": info.suitability().name.lower(),
            }
    return {"checker": "onnxruntime.tools.mobile_helpers.usability_checker", "eps": found}


def usability_line(usability: dict) -> str:
    return "; ".join(
        f"{ep} {r['supported_nodes']}/{r['nodes']} nodes in {r['partitions']} partition{'s' if r['partitions'] != 1 else ''}"
        + (f" (unsupported: {', '.join(r['unsupported_ops'])})" if r["unsupported_ops"] else "")
        for ep, r in usability["eps"].items()
    )
