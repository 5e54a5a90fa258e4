from collections import Counter

import pytest

from edgekit.artifact import Artifact
from edgekit.recipe.config import ExportConfig
from edgekit_converters.tflite_export import TFLiteConverter
from edgekit_runtimes.litert import LiteRTAdapter
from tests.contract.converters import ConverterContract


class TestTFLiteConverterContract(ConverterContract):
    @pytest.fixture(scope="class")
    def converter(self):
        return TFLiteConverter()

    @pytest.fixture(scope="class")
    def export_config(self):
        return ExportConfig(kind="export", format="tflite", seq_lens=[32])  # one short bucket: a quick conversion


def test_export_is_validated_and_named(tiny_tflite):
    art = Artifact.load(tiny_tflite / "tflite-fp32")
    assert art.format == "tflite" and art.model_file == "model.tflite"
    assert art.meta["validation"]["max_abs_diff"] < 1e-4
    s = LiteRTAdapter().load(art.model_path)
    assert [i.name for i in s.inputs] == ["attention_mask", "input_ids", "token_type_ids"] or sorted(
        i.name for i in s.inputs
    ) == ["attention_mask", "input_ids", "token_type_ids"]
    assert all(i.dtype == "int32" and i.shape == (1, 128) for i in s.inputs)
    assert [o.name for o in s.outputs] == ["embeddings"]


def test_additive_mask_keeps_gather_nd_out_of_the_graph(tiny_tflite):
    s = LiteRTAdapter().load(tiny_tflite / "tflite-fp32")
    ops = Counter(op["op_name"] for op in s._interp._get_ops_details())
    assert "GATHER_ND" not in ops and "SELECT_V2" not in ops
    assert ops["DELEGATE"] >= 1


def test_bucketed_export_has_one_signature_per_bucket(tiny_bucketed_tflite):
    s = LiteRTAdapter().load(tiny_bucketed_tflite / "model.tflite")
    assert s.details()["signatures"] == ["seq_16", "seq_32"]
