"""edgekit: compress trained Transformers for edge devices.

``edgekit.load(bundle)`` is the runtime API (see :mod:`edgekit.device.runtime_api`); it
is imported on first use, so ``import edgekit`` stays light.
"""

__version__ = "0.1.0"


def load(bundle, runtime=None, threads=None, variant=None, check=True):
    """Load a bundle for inference: ``.embed(texts)``, ``.classify(texts)``, ``.run(feeds)``."""
    from edgekit.device.runtime_api import load as _load

    return _load(bundle, runtime=runtime, threads=threads, variant=variant, check=check)
