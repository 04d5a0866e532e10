"""Showing results to people: ``console`` (rich tables, progress lines and bars), ``report`` (the
pipeline's markdown), ``plot`` (bench's picture). Rendering reads records; it decides nothing.

May import: base, targets, model, graph, runtime, evidence, folder, quantization.
"""
