"""Choosing the artifact to ship: every candidate timed under every session setting
(``trials``), and the recommendation with its evidence (``selection``).

May import: base, targets, model, graph, runtime, evidence, folder, quantization, render, edge.
"""
