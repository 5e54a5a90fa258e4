"""ONNX Runtime graph optimization: transformer fusions (Attention, LayerNorm, Gelu, ...)."""

from __future__ import annotations

import logging
import shutil

from edgekit.plugins import get_runtime
from edgekit.recipe.config import OptimizeConfig
from edgekit.stages import ONNX, StageResult, register, require_input

# model types whose graphs onnxruntime.transformers' BERT fusions understand
_BERT_LIKE = {"bert", "roberta", "xlm-roberta", "distilbert", "electra", "camembert", "mpnet"}
# fusions into contrib ops the quantizer does not know (FusedMatMul, FusedGemm, FusedConv): a graph
# optimized offline with them has nothing left to quantize; ONNX Runtime fuses them at load time anyway
UNQUANTIZABLE_FUSIONS = ["MatMulScaleFusion", "GemmActivationFusion", "ConvActivationFusion"]


@register(OptimizeConfig, lambda c, fmt: f"{fmt}-fp32-opt", takes={ONNX})
def run_optimize(config: OptimizeConfig, parent, ctx, out_dir) -> StageResult:
    require_input(config, parent)
    cfg = ctx.checkpoint.config if ctx.checkpoint is not None else {}  # a model file: generic optimizations
    out = out_dir / "model.onnx"
    fused: dict[str, int] = {}
    model_type = cfg.get("model_type")
    if config.fusions == "transformer" and model_type in _BERT_LIKE:
        from onnxruntime.transformers.fusion_options import FusionOptions
        from onnxruntime.transformers.optimizer import optimize_model

        logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
        heads = int(cfg.get("num_attention_heads", cfg.get("n_heads", 0)))
        hidden = int(cfg.get("hidden_size", cfg.get("dim", 0)))
        if cfg.get("edgekit_attention_heads"):  # structurally pruned: fewer heads of the same size
            hidden = hidden // heads * int(cfg["edgekit_attention_heads"])
            heads = int(cfg["edgekit_attention_heads"])
        options = FusionOptions("bert")
        options.enable_gelu_approximation = config.gelu_approximation
        # the optimizer sets its modules' log levels itself; a pruned model's narrower q/k/v makes the
        # attention fusion warn once per layer (and fuse all the same), so warnings are off while it runs
        logging.disable(logging.WARNING)
        try:
            opt = optimize_model(
                input=str(parent.model_path),
                optimization_options=options,
                model_type="bert",
                num_heads=heads,
                hidden_size=hidden,
            )
        finally:
            logging.disable(logging.NOTSET)
        fused = {k: v for k, v in opt.get_fused_operator_statistics().items() if v}
        opt.save_model_to_file(str(out))
    else:
        # generic ORT graph optimizations, saved offline
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        so.optimized_model_filepath = str(out)
        so.log_severity_level = 3
        # MatMulScaleFusion's FusedMatMul (Q.K^T with the 1/sqrt(d) scale, as in ViT) defeats the symbolic
        # shape inference that static int8 needs; the Mul it saves is cheap
        ort.InferenceSession(
            str(parent.model_path), so, providers=["CPUExecutionProvider"], disabled_optimizers=UNQUANTIZABLE_FUSIONS
        )
        if not out.exists():
            shutil.copy2(parent.model_path, out)
    if not config.skip_layer_norm:
        n = unfuse_skip_layer_norm(out)
        left = fused.pop("SkipLayerNormalization", 0) - n
        fused.update({"SkipLayerNormalization": left} if left > 0 else {})
        fused["SkipLayerNormalization unfused"] = n
    session = get_runtime("onnxruntime").load(out, threads=ctx.threads)
    validation = ctx.check_parity(session, "optimize", config.atol, config.min_cosine)
    return StageResult(
        format="onnx",
        precision=parent.precision,
        model_file="model.onnx",
        validation=validation,
        extra={"fused_operators": fused},
        session=session,
    )


def unfuse_skip_layer_norm(path) -> int:
    """Rewrite each ``SkipLayerNormalization`` of the ONNX model at ``path`` as ``Add(input, skip)``, then
    ``Add(sum, bias)`` when it has a bias, then ``LayerNormalization``; returns how many it rewrote.

    The same function, and faster on a CPU: ONNX Runtime's SkipLayerNormalization kernel took 253 µs for
    128 x 384 at one thread where the three ops took 51 (148 vs 84 µs at two; benchmarks/skip_layer_norm.py),
    and MiniLM's dynamic int8 ran 1.18x faster without it. The order matters: ONNX
    Runtime's load-time SkipLayerNormFusion matches a bias added first (MatMul output + bias, then the
    residual) and would fuse the graph back; with the 1-D bias added last it leaves the three ops alone."""
    import onnx
    from onnx import helper

    model = onnx.load(str(path))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 17:  # LayerNormalization is an ONNX op from opset 17: an older graph keeps the fused node
        return 0
    nodes, count = [], 0
    for node in model.graph.node:
        if node.op_type != "SkipLayerNormalization":
            nodes.append(node)
            continue
        ins = list(node.input) + [""] * (5 - len(node.input))
        outs = list(node.output) + [""] * (4 - len(node.output))
        if outs[1] or outs[2]:  # the mean / inverse std outputs: no plain op writes them, leave the node
            nodes.append(node)
            continue
        eps = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-12)
        base = node.name or outs[0]
        total = f"{base}/skip_sum"
        nodes.append(helper.make_node("Add", ins[:2], [total], name=f"{base}/skip_add"))
        if ins[4]:
            nodes.append(helper.make_node("Add", [total, ins[4]], [f"{total}_bias"], name=f"{base}/bias_add"))
            total = f"{total}_bias"
        if outs[3]:  # input + skip + bias, read by later nodes
            nodes.append(helper.make_node("Identity", [total], [outs[3]], name=f"{base}/sum"))
        norm_in = [total, ins[2]] + ([ins[3]] if ins[3] else [])
        nodes.append(
            helper.make_node("LayerNormalization", norm_in, [outs[0]], name=f"{base}/ln", axis=-1, epsilon=eps)
        )
        count += 1
    if count:
        del model.graph.node[:]
        model.graph.node.extend(nodes)
        onnx.save(model, str(path))
    return count
