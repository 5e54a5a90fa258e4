"""edgekit: compress trained Transformers for edge devices."""

__version__ = "0.1.0"
