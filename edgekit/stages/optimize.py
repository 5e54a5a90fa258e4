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
