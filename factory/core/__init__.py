"""The shared ground of every step: the options engine (options.py), the manifest base (manifest.py), output
folders (outputs.py), errors, progress bars, launching, bundled resources, the language table, model sources and
vocabulary sizes. Nothing here imports a step package (tests/test_imports.py); this `__init__` imports nothing."""
