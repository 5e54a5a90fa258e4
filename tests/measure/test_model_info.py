"""Precision read from a model file that no manifest describes (what `edgekit bench FILE` shows)."""

import importlib.util

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgekit.measure.model_info import detect_precision


def _matmul_model(path, weight: np.ndarray, nodes=None):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", weight.shape[0]])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", weight.shape[1]])
    init = [numpy_helper.from_array(weight, "w")]
    graph = helper.make_graph(nodes or [helper.make_node("MatMul", ["x", "w"], ["y"])], "g", [x], [y], init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return path


def test_onnx_from_the_edgekit_artifacts(tiny_compressed):
    assert detect_precision(tiny_compressed / "onnx-int8-dynamic" / "model.onnx", "onnx") == "int8"
    assert detect_precision(tiny_compressed / "onnx-fp32" / "model.onnx", "onnx") == "fp32"


def test_onnx_fp16(tiny_fp16_onnx):
    assert detect_precision(tiny_fp16_onnx / "model.onnx", "onnx") == "fp16"


def test_onnx_quantized_operators_and_int8_weights(tmp_path):
    w = np.ones((16, 8), np.float32)
    assert detect_precision(_matmul_model(tmp_path / "f.onnx", w), "onnx") == "fp32"
    qdq = [
        helper.make_node("DequantizeLinear", ["wq", "s"], ["w"]),
        helper.make_node("MatMul", ["x", "w"], ["y"]),
    ]
    path = tmp_path / "q.onnx"
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 8])
    init = [
        numpy_helper.from_array(np.ones((16, 8), np.int8), "wq"),
        numpy_helper.from_array(np.array(0.1, np.float32), "s"),
    ]
    graph = helper.make_graph(qdq, "g", [x], [y], init)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    assert detect_precision(path, "onnx") == "int8"


def test_unreadable_or_unknown_is_unknown(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf \xff\x00")
    assert detect_precision(bad, "onnx") == "unknown"
    assert detect_precision(bad, "some-other-format") == "unknown"


@pytest.mark.skipif(importlib.util.find_spec("ai_edge_litert") is None, reason="ai-edge-litert is not installed")
def test_tflite(tiny_tflite):
    assert detect_precision(tiny_tflite / "tflite-fp32" / "model.tflite", "tflite") == "fp32"
    assert detect_precision(tiny_tflite / "tflite-int8-dynamic" / "model.tflite", "tflite") == "int8"
    assert detect_precision(tiny_tflite / "tflite-int8-static" / "model.tflite", "tflite") == "int8"


@pytest.mark.skipif(importlib.util.find_spec("ai_edge_litert") is None, reason="ai-edge-litert is not installed")
def test_bench_tflite_file_shows_int8(run_cli, tiny_tflite):
    import json

    model = tiny_tflite / "tflite-int8-dynamic" / "model.tflite"
    res = run_cli("bench", str(model), "--runs", "2", "--warmup", "1", "-t", "1", "--json", "-q")
    assert res.exit_code == 0, res.stderr
    (row,) = json.loads(res.output)["results"]
    assert row["precision"] == "int8" and row["name"] == "tflite-int8-dynamic"


def test_openvino_ir_constants(tmp_path):
    """An IR's .xml says what its constants are stored as (the .bin is not read)."""

    def ir(*consts, extra=""):
        layers = "".join(
            f'<layer id="{i}" type="Const"><data element_type="{t}" shape="8" offset="0" size="{n}" /></layer>'
            for i, (t, n) in enumerate(consts)
        )
        path = tmp_path / f"m{len(list(tmp_path.iterdir()))}.xml"
        path.write_text(f'<?xml version="1.0"?><net name="m" version="11"><layers>{layers}{extra}</layers></net>')
        return path

    assert detect_precision(ir(("f32", 4096), ("i64", 64)), "openvino") == "fp32"
    assert detect_precision(ir(("f16", 2048), ("f32", 64)), "openvino") == "fp16"
    assert detect_precision(ir(("u8", 1024), ("f16", 128)), "openvino") == "int8"  # weight-only int8
    fq = '<layer id="9" type="FakeQuantize" />'
    assert detect_precision(ir(("f32", 4096), extra=fq), "openvino") == "int8"
