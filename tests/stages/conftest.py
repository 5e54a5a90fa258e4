import pytest

from edgekit.checkpoint import load_checkpoint
from edgekit.data.calibration import load_text_data
from edgekit.pipeline.context import StageContext


@pytest.fixture
def ctx(tiny_ckpt):
    """A stage context on the tiny encoder, one thread."""
    return StageContext(checkpoint=load_checkpoint(tiny_ckpt), data=load_text_data(), recipe_digest="t", threads=1)
