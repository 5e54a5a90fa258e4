"""Quantization of an ONNX decoder graph (build side): int8 dynamic and int4 block-wise weight-only.

int8: ONNX Runtime's dynamic quantizer, weights per output channel, on every MatMul (the LM head
included) and, optionally, the token-embedding Gather. int4: ONNX Runtime's MatMulNBits quantizer,
blocks of ``block_size`` weights along the input axis, by round-to-nearest (``rtn``), by HQQ (``hqq``:
half-quadratic optimisation of scales and zero points) or by k-quant (``k_quant``); ``accuracy_level``
4 lets the kernel compute in int8 (the fast path on CPUs), 0 keeps float compute. Each choice is
measured by the pipeline, not assumed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from edgekit.errors import RecipeError
from edgekit.generation.runtime import DECODER_JSON


def _copy_sidecars(src_dir: Path, out_dir: Path) -> None:
    """The shape facts, and ONNX Runtime GenAI's config when the graph is the builder's (its loop runs it)."""
    for name in (DECODER_JSON, "genai_config.json", "seq2seq.json"):
        if (src_dir / name).is_file():
            shutil.copy2(src_dir / name, out_dir / name)


def quantize_int8(src_dir: Path, out_dir: Path, embeddings: bool = True, model_name: str = "model.onnx") -> Path:
    """``src_dir/model_name`` -> ``out_dir/model_name``, int8 dynamic (the other graphs of the folder are left)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / model_name
    ops = ["MatMul", "Gather"] if embeddings else ["MatMul"]
    quantize_dynamic(
        str(src_dir / model_name),
        str(out),
        per_channel=True,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=ops,
        extra_options={"MatMulConstBOnly": True},
    )
    _copy_sidecars(src_dir, out_dir)
    return out


def quantize_int4(
    src_dir: Path,
    out_dir: Path,
    *,
    algorithm: str = "rtn",
    block_size: int = 32,
    accuracy_level: int = 4,
    symmetric: bool = True,
    bits: int = 4,
    model_name: str = "model.onnx",
) -> Path:
    import onnx
    from onnxruntime.quantization import matmul_nbits_quantizer as mnb

    out_dir.mkdir(parents=True, exist_ok=True)
    model = onnx.load(str(src_dir / model_name))
    if algorithm == "rtn":
        algo = mnb.DefaultWeightOnlyQuantConfig(
            block_size=block_size, is_symmetric=symmetric, accuracy_level=accuracy_level, bits=bits
        )
    elif algorithm == "hqq":
        algo = mnb.HQQWeightOnlyQuantConfig(block_size=block_size, bits=4)
    elif algorithm == "k_quant":
        algo = mnb.KQuantWeightOnlyQuantConfig()
    else:
        raise RecipeError(f"unknown int4 algorithm {algorithm!r}")
    if bits != 4 and algorithm != "rtn":
        raise RecipeError(f"{algorithm} quantizes to 4 bits only; 8-bit weight-only is rtn")
    quant = mnb.MatMulNBitsQuantizer(
        model,
        bits=bits,
        block_size=block_size,
        is_symmetric=symmetric,
        accuracy_level=accuracy_level,
        algo_config=algo,
    )
    quant.process()
    out = out_dir / model_name
    quant.model.save_model_to_file(str(out), use_external_data_format=False)
    if accuracy_level:  # HQQ and k-quant leave the attribute unset: the kernel reads it at run time
        m = onnx.load(str(out))
        for node in m.graph.node:
            if node.op_type == "MatMulNBits":
                attrs = {a.name: a for a in node.attribute}
                if "accuracy_level" in attrs:
                    attrs["accuracy_level"].i = accuracy_level
                else:
                    node.attribute.append(onnx.helper.make_attribute("accuracy_level", accuracy_level))
        onnx.save(m, str(out))
    _copy_sidecars(src_dir, out_dir)
    return out
