"""Running artifacts: ONNX Runtime sessions and execution providers (``ort``, ``providers``),
ORT Mobile's usability check, the LiteRT and ExecuTorch runners beside the edge-runtime table
(``edge``), and interleaved timing (``latency``).

May import: base, targets, model, graph.
"""
