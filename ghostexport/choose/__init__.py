"""Choosing the artifact to ship: every candidate timed under every session setting
(``trials``), the recommendation with its evidence (``selection``), and the same choice made
on another device (``on_device``).

May import: base, targets, model, graph, runtime, evidence, folder, quantization, render, edge.
"""
