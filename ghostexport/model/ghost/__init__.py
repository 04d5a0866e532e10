"""The Ghost module as a plug-in for any CNN: the module, the replacement rule, distillation.

The ``ghostify`` stage (``ghostexport.stages.ghostify``) runs these on a user's model; they are a
floor below it, so ``build`` and ``check`` can rebuild a ghosted model from its manifest.
"""

from ghostexport.model.ghost.module import GhostLinear, GhostModule
from ghostexport.model.ghost.rule import GhostRule, ghostify_model

__all__ = ["GhostLinear", "GhostModule", "GhostRule", "ghostify_model"]
