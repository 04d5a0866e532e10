"""What an artifact is measured on and how: images and their preprocessing (``data``,
``preprocess``), the comparison figures (``comparison``), the parity and quality gates
(``parity``, ``quality``), where a graph diverges (``localize``), ONNX validity (``validate``).

May import: base, targets, model, graph, runtime.
"""
