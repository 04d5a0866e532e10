"""Running artifacts: ONNX Runtime sessions and execution providers (``ort``, ``providers``),
ORT Mobile's usability check, the LiteRT and ExecuTorch runners beside the edge-runtime table
(``edge``), interleaved timing (``latency``), and running on another device through a pipe
(``device``, which sends the self-contained ``device_worker``).

May import: base, targets, model, graph.
"""
