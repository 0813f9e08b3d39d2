"""Networks for FINN: the 8-bit original, the pixel-input wrapper, QONNX export and its check.

FINN needs every tensor quantized, so the hardware graph starts at the raw image: the
exported model takes pixel values 0..255 (float NCHW, annotated UINT8) and folds the
dataset normalization ``(x / 255 - mean) / std`` into the graph in front of the twin's
8-bit input quantizer; FINN's streamlining absorbs that affine map into the first
thresholds. The classifier's per-tensor output scale (a positive scalar) is the one
float operation FINN cannot place in hardware: :mod:`twindnn.hardware.finn_build`
removes it from the dataflow graph and records it, and the host multiplies the
accelerator's integer logits by it (argmax does not need it; the softmax gate does).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.transformation.change_batchsize import ChangeBatchSize
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.cleanup import cleanup_model
from torch import nn

from ..models import MAX_ACT_BITS, QuantSpec, create_quantized, load_trained


class PixelInput(nn.Module):
    """Wrap a twin so that its input is raw pixel values (0..255 as float, NCHW)."""

    def __init__(self, model: nn.Module, mean, std):
        super().__init__()
        self.model = model
        mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        # (x / 255 - mean) / std = x * scale + shift
        self.register_buffer("scale", 1.0 / (255.0 * std))
        self.register_buffer("shift", -mean / std)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(pixels * self.scale + self.shift)


def quantize_original(original_checkpoint, weight_bits: int = 8, act_bits: int = 8,
                      calibration_images: np.ndarray | None = None, log=sys.stderr) -> tuple[nn.Module, dict]:
    """Post-training quantization of the trained original to W``weight_bits``A``act_bits``.

    Returns the quantized network and the float original's checkpoint metadata. It is the twin's
    class (:func:`twindnn.models.create_quantized`) with n-bit weights and activations everywhere
    (same topology, FINN-friendly residual adds); weights and BN statistics are copied from
    the original and the activation scales are calibrated on ``calibration_images``
    (uint8 NHWC). A short QAT (``twindnn.train.fit``) can follow; see
    :func:`twindnn.steps.fpga.quantize_original_step`.
    """
    if act_bits > MAX_ACT_BITS:
        raise ValueError(f"hardware.original_quant.act_bits {act_bits}: FINN computes activations as thresholds "
                         f"(2^{act_bits} - 1 per channel); use act_bits <= {MAX_ACT_BITS} (the paper's 8-bit variant "
                         "of the original has 16-bit weights and 8-bit activations)")
    original, source = load_trained(original_checkpoint)
    spec = QuantSpec(f"original_w{weight_bits}a{act_bits}", weight_bits, act_bits,
                    edge_bits=max(8, weight_bits), stream_bits=act_bits, act_scaling="calibrated",
                    signed_residual=True)
    quant = create_quantized(original, spec, init_from_original=True).eval()
    if calibration_images is not None and len(calibration_images):
        from brevitas.graph.calibrate import calibration_mode  # deferred: Brevitas is imported where it is used

        meta = source["data_meta"]
        pixels = torch.from_numpy(np.ascontiguousarray(calibration_images)).permute(0, 3, 1, 2).float()
        wrapped = PixelInput(quant, meta["mean"], meta["std"]).eval()
        with torch.no_grad(), calibration_mode(quant):
            for start in range(0, len(pixels), 128):
                wrapped(pixels[start:start + 128])
        print(f"calibrated activation scales on {len(pixels)} images", file=log)
    return quant.eval(), source


def export_qonnx_model(model: nn.Module, data_meta: dict, out_path, batch: int = 1) -> Path:
    """Export ``model`` (a network of :func:`twindnn.models.create_quantized`) with a pixel input to QONNX; returns the path."""
    from brevitas.export import export_qonnx  # deferred: Brevitas's exporters are imported where they are used

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    wrapped = PixelInput(model, data_meta["mean"], data_meta["std"]).eval()
    size, channels = int(data_meta["image_size"]), int(data_meta["channels"])
    example = torch.zeros(batch, channels, size, size)
    # torch 2.12 defaults to the dynamo exporter, which fails on residual blocks.
    export_qonnx(wrapped, input_t=example, export_path=str(out_path), dynamo=False)
    qmodel = cleanup_model(ModelWrapper(str(out_path)))
    qmodel.set_tensor_datatype(qmodel.graph.input[0].name, DataType["UINT8"])
    qmodel.save(str(out_path))
    return out_path


QONNX_CHUNK = 32  # images per qonnx execution


def qonnx_logits(onnx_path, images_nhwc: np.ndarray) -> np.ndarray:
    """Logits of a QONNX/FINN model on uint8 NHWC images (qonnx execution).

    ``QONNX_CHUNK`` images per execution where qonnx's ``ChangeBatchSize`` makes the graph take
    them (an exported QONNX graph: 64 Fashion-MNIST images in 0.3 s instead of 6 s), else one image
    at a time (FINN graphs whose ``Im2Col`` nodes carry a batch of one in their attributes)."""
    model = ModelWrapper(str(onnx_path))
    iname, oname = model.graph.input[0].name, model.graph.output[0].name
    shape = model.get_tensor_shape(iname)
    nhwc = shape[-1] == images_nhwc.shape[-1] and shape[1] != images_nhwc.shape[-1]
    x = images_nhwc.astype(np.float32)
    if not nhwc:
        x = x.transpose(0, 3, 1, 2)
    if len(x) > 1 and not model.get_nodes_by_op_type("Im2Col"):
        # in chunks: execute_onnx keeps every intermediate tensor of the batch
        outs, graphs = [], {}
        for start in range(0, len(x), QONNX_CHUNK):
            chunk = x[start:start + QONNX_CHUNK]
            if len(chunk) not in graphs:
                graphs[len(chunk)] = model.transform(ChangeBatchSize(len(chunk))).transform(InferShapes())
            outs.append(execute_onnx(graphs[len(chunk)], {iname: chunk})[oname].reshape(len(chunk), -1))
        return np.concatenate(outs)
    return np.stack([execute_onnx(model, {iname: x[i:i + 1]})[oname].reshape(-1) for i in range(len(x))])


def torch_logits(model: nn.Module, data_meta: dict, images_nhwc: np.ndarray) -> np.ndarray:
    wrapped = PixelInput(model, data_meta["mean"], data_meta["std"]).eval()
    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(images_nhwc)).permute(0, 3, 1, 2).float()
        return wrapped(x).numpy()


def check_export(model: nn.Module, data_meta: dict, onnx_path, images_nhwc: np.ndarray,
                 labels: np.ndarray | None = None) -> dict:
    """Compare PyTorch and QONNX-executed predictions on real images; a dict of agreement figures."""
    ref = torch_logits(model, data_meta, images_nhwc)
    got = qonnx_logits(onnx_path, images_nhwc)
    row = {
        "images": len(images_nhwc),
        "prediction_agreement": float((ref.argmax(1) == got.argmax(1)).mean()),
        "max_abs_logit_diff": float(np.abs(ref - got).max()),
        "torch_accuracy": float((ref.argmax(1) == labels).mean()) if labels is not None else float("nan"),
        "qonnx_accuracy": float((got.argmax(1) == labels).mean()) if labels is not None else float("nan"),
    }
    return row
