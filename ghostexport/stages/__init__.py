"""One module per command, each ``spec → run → record``, and ``specs``: the frozen spec each
command validates before any work, whose fields the CLI's options are built from. Only
``pipeline`` and ``ghostify`` run other commands.

May import: base, targets, model, graph, runtime, evidence, folder, quantization, render, edge, choose.
"""
