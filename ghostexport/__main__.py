"""``python -m ghostexport`` runs the same CLI as the ``ghostexport`` script."""

from ghostexport.cli import main

main(prog_name="ghostexport")
