"""The artifact folder: its name and ``LATEST`` (``naming``), the typed manifest and its schema
(``schema``, ``manifest``), the records each stage writes (``records``), crash-safe commits
(``commit``), what a MODEL argument names (``artifacts``) and the PyTorch model a manifest
rebuilds (``reference``).

May import: base, targets, model, graph, runtime, evidence.
"""
