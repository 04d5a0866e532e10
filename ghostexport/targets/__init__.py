"""Where an artifact will run: this machine's CPU described (``host``), and the target
profiles with the one CPU classification that picks both their layout and their int8 types
(``profiles``).

May import: base.
"""
