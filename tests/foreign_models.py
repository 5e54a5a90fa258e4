"""Model files as third parties ship them, built here from nothing (no download, no edgekit export):
an ONNX MLP, an ONNX graph whose inputs cannot be guessed, and a TFLite file with no signatures whose
operator codes are written the pre-2.4 way (as MediaPipe's are)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def mlp_onnx(path: Path, seed: int = 0, hidden: int = 64, opset: int = 17, constants: bool = False) -> Path:
    """``y = relu(x @ W1) @ W2``: x [batch, 64] -> y [batch, 16], seeded weights, dims named ``batch``.
    With ``constants`` the weights are Constant nodes, not initializers (as Paddle's exporter writes them)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w1 = (rng.standard_normal((64, hidden)) / 8).astype(np.float32)
    w2 = (rng.standard_normal((hidden, 16)) / 8).astype(np.float32)
    weights = [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")]
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("MatMul", ["r", "w2"], ["y"]),
    ]
    if constants:
        nodes = [helper.make_node("Constant", [], [w.name], value=w) for w in weights] + nodes
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 16])],
        initializer=[] if constants else weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


def picky_onnx(path: Path) -> Path:
    """Inputs edgekit cannot guess: ``x`` [N, 3, h, w] runs only at h=48, w=8 (it is concatenated with a
    fixed [1, 1, 48, 8] plane), and the scalar ``sr`` only near 16000 (``range(0, sr, 1000)`` plus one
    element must have the 17 elements of a constant it is added to)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    plane = numpy_helper.from_array(np.ones((1, 1, 48, 8), np.float32), "plane")
    zero = numpy_helper.from_array(np.array(0, np.int64), "zero")
    step = numpy_helper.from_array(np.array(1000, np.int64), "step")
    one = numpy_helper.from_array(np.zeros(1, np.float32), "one")
    bins = numpy_helper.from_array(np.arange(17, dtype=np.float32), "bins")
    graph = helper.make_graph(
        [
            helper.make_node("Concat", ["x", "plane"], ["xc"], axis=1),
            helper.make_node("ReduceSum", ["xc"], ["xs"], keepdims=0),
            helper.make_node("Range", ["zero", "sr", "step"], ["steps"]),
            helper.make_node("Cast", ["steps"], ["stepsf"], to=TensorProto.FLOAT),
            helper.make_node("Concat", ["stepsf", "one"], ["padded"], axis=0),
            helper.make_node("Add", ["padded", "bins"], ["spectrum"]),
            helper.make_node("ReduceSum", ["spectrum"], ["ss"], keepdims=0),
            helper.make_node("Add", ["xs", "ss"], ["y"]),
        ],
        "picky",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "h", "w"]),
            helper.make_tensor_value_info("sr", TensorProto.INT64, []),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])],
        initializer=[plane, zero, step, one, bins],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


def legacy_fc_tflite(path: Path, seed: int = 0, legacy_opcodes: bool = True) -> Path:
    """One FULLY_CONNECTED layer (input [1, 64] -> output [1, 16], ReLU) with no signatures; with
    ``legacy_opcodes`` its operator code sits in ``deprecated_builtin_code`` only (``builtin_code`` 0, which
    is ADD), as in flatbuffers written before TFLite 2.4."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    rng = np.random.default_rng(seed)
    weights = (rng.standard_normal((16, 64)) / 8).astype(np.float32)  # [out, in]
    bias = (rng.standard_normal(16) / 8).astype(np.float32)

    def buffer(data: np.ndarray | None):
        b = s.BufferT()
        b.data = None if data is None else np.frombuffer(data.tobytes(), dtype=np.uint8)
        return b

    def tensor(name: str, shape: list[int], buf: int):
        t = s.TensorT()
        t.name, t.shape, t.type, t.buffer = name, shape, s.TensorType.FLOAT32, buf
        return t

    code = s.OperatorCodeT()
    fc = s.BuiltinOperator.FULLY_CONNECTED
    code.deprecatedBuiltinCode, code.builtinCode, code.version = fc, 0 if legacy_opcodes else fc, 1
    options = s.FullyConnectedOptionsT()
    options.fusedActivationFunction = s.ActivationFunctionType.RELU
    op = s.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1, 2], [3]
    op.builtinOptionsType, op.builtinOptions = s.BuiltinOptions.FullyConnectedOptions, options
    graph = s.SubGraphT()
    graph.tensors = [tensor("input", [1, 64], 0), tensor("w", [16, 64], 1), tensor("b", [16], 2)]
    graph.tensors.append(tensor("output", [1, 16], 0))
    graph.inputs, graph.outputs, graph.operators, graph.name = [0], [3], [op], "main"
    model = s.ModelT()
    model.version, model.description = 3, "edgekit test: legacy FC"
    model.operatorCodes, model.subgraphs = [code], [graph]
    model.buffers = [buffer(None), buffer(weights), buffer(bias)]
    builder = flatbuffers.Builder(4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(builder.Output())
    return path
