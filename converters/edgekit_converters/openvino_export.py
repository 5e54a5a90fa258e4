"""PyTorch -> OpenVINO IR (``model.xml`` + ``model.bin``), through the ONNX exporter.

The checkpoint's task module goes through :class:`~edgekit_converters.onnx_export.OnnxConverter`'s
export (the same task wrapper, input names and dynamic batch/sequence axes), and OpenVINO's ONNX
frontend reads the result; the IR is saved with float32 weights. Measured on MiniLM, this path and
``openvino.convert_model`` on the PyTorch module give the same parity to PyTorch (max abs diff 9e-7)
and the same latency; the ONNX path keeps the ONNX graph's node names (so the exclusion patterns
written for ONNX models select the same layers) and does not go through the model converter, whose
usage telemetry is on by default.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from edgekit_converters.base import Converter
from edgekit_converters.onnx_export import OnnxConverter


class OpenVINOConverter(Converter):
    name = "openvino"
    format = "openvino"
    requires = ("openvino", "onnx")
    model_file = "model.xml"
    runtime = "openvino"
    ecosystem_outputs = True

    def export(self, ctx, config, out_dir: Path) -> Path:
        from edgekit.plugins import get_runtime
        from edgekit_runtimes.openvino_cpu import import_openvino

        get_runtime(self.runtime)  # without openvino: a one-line RuntimeUnavailableError, before the ONNX export
        ov = import_openvino()

        out = Path(out_dir) / self.model_file
        with tempfile.TemporaryDirectory(prefix="edgekit-ov-") as tmp:
            onnx_path = OnnxConverter().export(ctx, config, Path(tmp))
            model = ov.Core().read_model(str(onnx_path))
            ov.save_model(model, str(out), compress_to_fp16=False)  # the default stores weights in float16
        return out
