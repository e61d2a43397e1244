"""`python -m promptascent`. Importing the package has already taken the current
folder off the import path (promptascent/__init__.py says why)."""

from promptascent.cli.main import main

main()
