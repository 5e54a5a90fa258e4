"""Converters for edgekit: export a PyTorch model to a deployable format and
always validate the result against the PyTorch reference."""
