"""Data every side reads: calibration and held-out texts, labelled sets, images, input feeds, tokenizers."""
