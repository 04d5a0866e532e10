"""The lowest floor: errors and exit codes, atomic and bounded file access, the progress
channel, the package version, and the closed sets of choices every floor shares (``choices``).

May import: nothing of this package.
"""
