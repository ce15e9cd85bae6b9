"""`python -m factory` and `accelerate launch -m factory ...` run the same CLI as `factory`."""

from factory.cli import main

main()
