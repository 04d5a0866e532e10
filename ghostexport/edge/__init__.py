"""Edge runtimes beyond ONNX Runtime: LiteRT (``.tflite``) and ExecuTorch (``.pte``, XNNPACK).

Both convert from PyTorch, not from ONNX (onnx2tf pins conflicting versions and fails on the
Ghost Concat at batch 1): the model is rebuilt from the build folder's manifest, prepared
for the runtime (``prepare``), converted by the runtime's own tools, and each format lives
in its own module with its converter and its runner. Each is an optional extra
(``[litert]``, ``[executorch]``); a missing one is named in a one-line error.

May import: base, targets, model, graph, runtime, evidence, folder, quantization, render.
"""
