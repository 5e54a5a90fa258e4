"""Runtime adapters for edgekit: load an artifact and run it, nothing more.

Each adapter imports its heavy library lazily, so this package imports with
only numpy installed. Adapters are registered through the ``edgekit.runtimes``
entry-point group (see pyproject.toml).
"""
