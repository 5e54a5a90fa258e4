import pytest
import torch

from edgekit.checkpoint import load_checkpoint
from edgekit.data.feeds import tokenize
from edgekit_runtimes.base import TensorSpec
from edgekit_runtimes.torch_eager import TorchEagerAdapter
from tests.runtimes.contract import RuntimeAdapterContract

TEXTS = ["the quick brown fox", "a longer sentence about the state of the union and its budget"]


class TestTorchEager(RuntimeAdapterContract):
    @pytest.fixture
    def adapter(self):
        return TorchEagerAdapter()

    @pytest.fixture
    def model_path(self, tiny_ckpt):
        return tiny_ckpt

    @pytest.fixture
    def reference(self, tiny_ckpt):
        """Mean pooling computed here by hand from the transformers model."""
        ck = load_checkpoint(tiny_ckpt)
        specs = [TensorSpec(n, "int64", ("b", "s")) for n in ck.input_names]
        feeds = tokenize(ck.tokenizer, TEXTS, specs, 32)
        with torch.no_grad():
            h = ck.model(**{k: torch.from_numpy(v) for k, v in feeds.items()}).last_hidden_state
        m = torch.from_numpy(feeds["attention_mask"]).unsqueeze(-1).float()
        return feeds, ((h * m).sum(1) / m.sum(1)).numpy(), 1e-5
