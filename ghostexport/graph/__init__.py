"""The ONNX graph: export from PyTorch, simplification, and exact rewrites (each with its
inverse) — the Concat split and its merge, the mobile op forms.

May import: base, targets, model.
"""

from ghostexport.graph.concat_split import merge_split_convs, split_concat_convs
from ghostexport.graph.mobile_forms import mobile_forms
from ghostexport.graph.rewrite import apply_replacements, attributes, consumers, producers, repeat_until_unchanged

__all__ = [
    "apply_replacements",
    "attributes",
    "consumers",
    "merge_split_convs",
    "mobile_forms",
    "producers",
    "repeat_until_unchanged",
    "split_concat_convs",
]
