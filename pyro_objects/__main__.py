"""`python -m pyro_objects ...` is the same as `pyro-objects ...`."""
from pyro_objects.cli import main

main(prog_name="pyro-objects")
