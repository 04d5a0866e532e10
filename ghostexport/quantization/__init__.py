"""Quantization of an ONNX graph: static INT8 (QDQ), FP16 and dynamic INT8, each in its own module.

``recipe`` chooses types and float layers, ``static``/``fp16``/``dynamic`` wrap onnxruntime's
tools, ``auto`` searches recipes, ``forms`` rewrites the graph around them. The command that
runs them on a build folder and records the evidence is ``ghostexport.stages.quantize``.

May import: base, targets, model, graph, runtime, evidence, folder.
"""
