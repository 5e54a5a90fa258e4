"""Measurement: timing, the side-by-side harness, fidelity, evaluation, per-layer diffs, environment."""
