"""The original network (a timm ResNet) and its quantized twin (Brevitas).

The twin mirrors the original module for module and keeps timm's parameter
names, so ``twin.load_state_dict(original.state_dict(), strict=False)``
initializes it. It is built for FINN:

- the first convolution and the classifier use 8-bit weights (as FINN designs
  do), the input is quantized to 8 bits;
- inside the blocks weights are binary, ternary or n-bit and activations
  binary (bipolar) or n-bit;
- every residual add takes two tensors from one shared unsigned quantizer (so
  both share one scale), and a quantized ReLU follows the add;
- a convolution fed by binary (bipolar) activations pads with -1, not 0: FINN's
  XNOR/popcount layers encode -1/+1 as 0/1 and pad with 0, which is -1. With
  zero padding the FPGA twin would compute another function at every border.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import timm
import torch
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
from brevitas.quant import (
    Int8ActPerTensorFloat,
    Int8WeightPerChannelFloat,
    Int8WeightPerTensorFloat,
    SignedBinaryActPerTensorConst,
    SignedBinaryWeightPerTensorConst,
    SignedTernaryWeightPerTensorConst,
)
from torch import nn

SMALL_INPUT_MAX = 64  # inputs up to this size get the 3x3 stem without max-pool
MAX_ACT_BITS = 8  # FINN activations are thresholds: 2^bits - 1 of them per channel


def create_original(name: str, num_classes: int, in_chans: int, image_size: int,
                    pretrained_file: str | None = None, **model_kwargs) -> nn.Module:
    """A timm ResNet or MobileNetV2; small images (<= 64 px) get a stride-1 stem (and no max-pool).

    ``pretrained_file``: a local weights file for timm (never a hub download).
    """
    kwargs = dict(model_kwargs)
    if pretrained_file:
        kwargs.update(pretrained=True, pretrained_cfg_overlay=dict(file=str(pretrained_file)))
    try:
        model = timm.create_model(name, num_classes=num_classes, in_chans=in_chans, **kwargs)
    except RuntimeError as err:
        if "Unknown model" in str(err):
            raise ValueError(f"original.model {name!r} is not a timm model; see timm.list_models('resnet*') "
                             "and timm.list_models('mobilenetv2*').") from err
        raise
    family = model_family(model)
    if family is None:
        raise ValueError(f"original.model {name!r}: only timm ResNets with a plain stem (conv1) and timm "
                         "MobileNetV2s (conv_stem + inverted-residual blocks) are supported.")
    if image_size <= SMALL_INPUT_MAX:
        if family == "resnet":
            width = model.conv1.out_channels
            model.conv1 = nn.Conv2d(in_chans, width, kernel_size=3, stride=1, padding=1, bias=False)
            model.maxpool = nn.Identity()
        else:
            model.conv_stem.stride = (1, 1)
    return model


def model_family(model: nn.Module) -> str | None:
    """``"resnet"``, ``"mobilenetv2"`` or None (a timm model this project cannot twin)."""
    if hasattr(model, "layer1") and isinstance(getattr(model, "conv1", None), nn.Conv2d):
        return "resnet"
    blocks = [block for stage in getattr(model, "blocks", []) for block in stage]
    # EfficientNets share timm's block classes but add squeeze-excitation and SiLU: not these.
    if isinstance(getattr(model, "conv_stem", None), nn.Conv2d) and blocks and all(
            type(block).__name__ in ("DepthwiseSeparableConv", "InvertedResidual")
            and isinstance(getattr(block, "se", None), nn.Identity) for block in blocks) \
            and isinstance(getattr(model.bn1, "act", None), nn.ReLU6):
        return "mobilenetv2"
    return None


# --------------------------------------------------------------------------- twin


@dataclass(frozen=True)
class QuantSpec:
    """Bit widths of a quantized network: a twin, or the original as the FPGA runs it (8-bit by
    default). ``weight_bits``: 1 (binary), 2 with ``ternary`` ({-1,0,1}), or n. The field defaults
    are the schema's (``twins`` entries; a test holds them equal)."""

    name: str
    weight_bits: int
    act_bits: int
    ternary: bool = False
    edge_bits: int = 8  # first and last layer, as FINN designs do
    # Residual stream (block outputs, add inputs); None = max(2, act_bits): a 1-bit unsigned
    # stream ({0, s}) left the twin at chance accuracy in our runs.
    stream_bits: int | None = None
    # Activation scales: "learned" (initialized from a fixed clip, trained with QAT) or
    # "calibrated" (from activation statistics on calibration images: post-training quantization).
    act_scaling: str = "learned"
    # Residual adds on a signed quantizer: keeps a post-training-quantized original faithful
    # (unsigned add inputs clip each branch's negative half: a float CIFAR-10 original dropped
    # from 61 % to 35 %). Twins keep unsigned adds and learn around them.
    signed_residual: bool = False
    # Weight scales: one per tensor, or one per output channel (the paper's ternary twin).
    weight_scaling: str = "per_tensor"

    def __post_init__(self):
        if self.weight_scaling not in ("per_tensor", "per_channel"):
            raise ValueError(f"twin {self.name}: weight_scaling {self.weight_scaling!r}: use per_tensor or per_channel")
        if self.weight_scaling == "per_channel" and self.weight_bits == 1 and not self.ternary:
            raise ValueError(f"twin {self.name}: binary weights have one constant scale; per_channel scaling needs "
                             "ternary: true or weight_bits >= 2")

    @classmethod
    def from_config(cls, name: str, cfg: dict) -> QuantSpec:
        """The spec of twin ``name`` from its ``twins`` entry; keys it leaves out keep the field
        defaults (the schema's)."""
        optional = {k: cfg[k] for k in ("ternary", "edge_bits", "stream_bits", "weight_scaling") if k in cfg}
        ternary = bool(optional["ternary"]) if "ternary" in optional else cls.ternary
        weight_bits = 2 if ternary else int(cfg["weight_bits"])
        return cls(name, weight_bits, int(cfg["act_bits"]), **optional)

    @property
    def scaling(self) -> dict:
        """Brevitas keyword arguments of the activation quantizers' scales."""
        if self.act_scaling == "learned":
            return SCALING
        if self.act_scaling == "calibrated":
            return CALIBRATED_SCALING
        raise ValueError(f"act_scaling {self.act_scaling!r}: use 'learned' or 'calibrated'")


def _weight_quant(spec: QuantSpec):
    if spec.weight_scaling == "per_channel":
        # ternary: 2-bit narrow range, {-1, 0, +1} times one learned scale per output channel
        return dict(weight_quant=Int8WeightPerChannelFloat, weight_bit_width=spec.weight_bits,
                    weight_narrow_range=True)
    if spec.ternary:
        return dict(weight_quant=SignedTernaryWeightPerTensorConst)
    if spec.weight_bits == 1:
        return dict(weight_quant=SignedBinaryWeightPerTensorConst)
    return dict(weight_quant=Int8WeightPerTensorFloat, weight_bit_width=spec.weight_bits)


def _conv(conv: nn.Conv2d, quant: dict, padding=None) -> nn.Module:
    return QuantConv2d(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                       padding=conv.padding if padding is None else padding, groups=conv.groups, bias=False,
                       **quant)


class BipolarPad(nn.Module):
    """Pad a bipolar (-1/+1) feature map with -1, as FINN's XNOR/popcount hardware does.

    Exports as an ONNX ``Pad`` (constant -1) in front of a convolution without padding;
    ``twindnn.hardware.finn_build`` folds it back into the convolution's input generator."""

    def __init__(self, padding: tuple[int, int]):
        super().__init__()
        pad_h, pad_w = padding
        self.pads = (pad_w, pad_w, pad_h, pad_h)  # F.pad order: left, right, top, bottom

    def forward(self, x):
        x = x.value if hasattr(x, "value") else x
        return nn.functional.pad(x, self.pads, mode="constant", value=-1.0)


def _bipolar_conv(conv: nn.Conv2d, quant: dict, act_bits: int) -> tuple[nn.Module, nn.Module]:
    """(pad, conv) for a convolution fed by an inner activation: -1 padding when it is bipolar."""
    if act_bits != 1 or tuple(conv.padding) == (0, 0):
        return nn.Identity(), _conv(conv, quant)
    return BipolarPad(tuple(conv.padding)), _conv(conv, quant, padding=(0, 0))


def _inner_act(bits: int, scaling: dict) -> nn.Module:
    """Activation inside a block (feeding the next conv): bipolar at 1 bit, else unsigned."""
    if bits == 1:
        return QuantIdentity(act_quant=SignedBinaryActPerTensorConst, return_quant_tensor=True)
    return QuantReLU(bit_width=bits, max_val=_relu_max(bits), return_quant_tensor=True, **scaling)


def _relu_max(bits: int) -> float:
    # Initial clip of a learned-scale QuantReLU, sized for BN outputs (about unit variance).
    return {1: 1.0, 2: 2.0, 3: 3.0}.get(bits, 6.0)


# Learned scales initialized from max_val. Brevitas's default for these quantizers collects a
# 99.999th-percentile statistic over the first 300 steps; its kthvalue made twin training on a
# GPU 100x slower than the original (measured on an H200: 190 vs 25,000 images/s).
SCALING = dict(scaling_impl_type="parameter")
# Post-training quantization: scales from the 99.99th percentile of each activation on the
# calibration images (brevitas.graph.calibrate.calibration_mode), then fixed parameters.
CALIBRATED_SCALING = dict(scaling_impl_type="parameter_from_stats", scaling_stats_op="percentile",
                          high_percentile_q=99.99, collect_stats_steps=30)


def _stream_act(bits: int, scaling: dict) -> nn.Module:
    """Unsigned quantizer of the residual stream (block inputs/outputs, both add inputs)."""
    return QuantReLU(bit_width=bits, max_val=_relu_max(bits), return_quant_tensor=True, **scaling)


def _signed_act(bits: int, scaling: dict) -> nn.Module:
    """Signed quantizer of both residual add inputs (``QuantSpec.signed_residual``)."""
    limit = _relu_max(bits)
    return QuantIdentity(act_quant=Int8ActPerTensorFloat, bit_width=bits, max_val=limit, min_val=-limit,
                         return_quant_tensor=True, **scaling)


class QuantBlock(nn.Module):
    """A timm BasicBlock or Bottleneck with quantized convs and a FINN-friendly add."""

    def __init__(self, block: nn.Module, spec: QuantSpec, stream_bits: int):
        super().__init__()
        wq = _weight_quant(spec)
        self.bottleneck = hasattr(block, "conv3")
        self.conv1, self.bn1, self.act1 = (_conv(block.conv1, wq), copy.deepcopy(block.bn1),
                                           _inner_act(spec.act_bits, spec.scaling))
        self.pad2, self.conv2 = _bipolar_conv(block.conv2, wq, spec.act_bits)
        self.bn2 = copy.deepcopy(block.bn2)
        if self.bottleneck:
            self.act2 = _inner_act(spec.act_bits, spec.scaling)
            self.pad3, self.conv3 = _bipolar_conv(block.conv3, wq, spec.act_bits)
            self.bn3 = copy.deepcopy(block.bn3)
        self.downsample = None
        if block.downsample is not None:
            ds_conv, ds_bn = block.downsample[0], block.downsample[1]
            self.downsample = nn.Sequential(_conv(ds_conv, wq), copy.deepcopy(ds_bn))
        # One quantizer for both add inputs: same scale, both unsigned (or both signed).
        self.add_quant = (_signed_act(stream_bits, spec.scaling) if spec.signed_residual
                          else _stream_act(stream_bits, spec.scaling))
        self.act_out = _stream_act(stream_bits, spec.scaling)

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(self.pad2(out)))
        if self.bottleneck:
            out = self.bn3(self.conv3(self.pad3(self.act2(out))))
        out = self.add_quant(out) + self.add_quant(shortcut)
        return self.act_out(out)


class _QuantNet(nn.Module):
    """What every twin shares: the 8-bit input quantizer in front, and behind the body the global
    pool, the 8-bit head quantizer and the classifier with ``edge_bits`` weights and no bias.

    A subclass builds its body between ``super().__init__(spec)`` and :meth:`_add_head`, so its
    modules (and parameters) are registered in forward order."""

    def __init__(self, spec: QuantSpec):
        super().__init__()
        self.spec = spec
        self.stream_bits = spec.stream_bits or max(2, spec.act_bits)
        self.edge = dict(weight_quant=Int8WeightPerTensorFloat, weight_bit_width=spec.edge_bits)
        # FINN computes activations as thresholds (2^bits - 1 per channel): edge activations stay at
        # 8 bits even when the edge weights are wider (the paper's 16-bit-weight original).
        self.edge_act_bits = min(spec.edge_bits, MAX_ACT_BITS)
        # Normalized images lie within about +-3.
        self.input_quant = QuantIdentity(act_quant=Int8ActPerTensorFloat, bit_width=self.edge_act_bits, max_val=3.0,
                                         min_val=-3.0, return_quant_tensor=True, **spec.scaling)

    def _add_head(self, name: str, fc: nn.Linear) -> None:
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        head_max = 2 * _relu_max(self.stream_bits)
        self.head_quant = QuantIdentity(act_quant=Int8ActPerTensorFloat, bit_width=self.edge_act_bits,
                                        max_val=head_max, min_val=-head_max, return_quant_tensor=True,
                                        **self.spec.scaling)
        # No bias: a trailing float add would fall outside FINN's dataflow partition.
        setattr(self, name, QuantLinear(fc.in_features, fc.out_features, bias=False, **self.edge))
        self._classifier = name

    def _classify(self, x):
        x = torch.flatten(self.global_pool(x), 1)
        out = getattr(self, self._classifier)(self.head_quant(x))
        return out.value if hasattr(out, "value") else out


class QuantResNet(_QuantNet):
    """The twin: the original's topology with Brevitas layers (see module docstring)."""

    def __init__(self, original: nn.Module, spec: QuantSpec):
        super().__init__(spec)
        self.conv1 = _conv(original.conv1, self.edge)
        self.bn1 = copy.deepcopy(original.bn1)
        self.act1 = _stream_act(self.stream_bits, spec.scaling)
        self.maxpool = copy.deepcopy(original.maxpool)
        for i in range(1, 5):
            layer = getattr(original, f"layer{i}")
            setattr(self, f"layer{i}", nn.Sequential(*[QuantBlock(b, spec, self.stream_bits) for b in layer]))
        self._add_head("fc", original.fc)

    def forward(self, x):
        x = self.act1(self.bn1(self.conv1(self.input_quant(x))))
        x = self.maxpool(x)
        return self._classify(self.layer4(self.layer3(self.layer2(self.layer1(x)))))


def _plain_bn(bn: nn.Module) -> nn.BatchNorm2d:
    """A plain BatchNorm2d with ``bn``'s parameters (timm's BatchNormAct2d carries its activation)."""
    plain = nn.BatchNorm2d(bn.num_features, eps=bn.eps, momentum=bn.momentum)
    plain.load_state_dict(nn.BatchNorm2d.state_dict(bn))
    return plain


class QuantInvertedResidual(nn.Module):
    """A timm MobileNetV2 block (InvertedResidual, or the first stage's DepthwiseSeparableConv).

    Quantized convolutions (the depthwise one keeps its groups: FINN's vector-vector unit), an
    inner activation after each expanding/depthwise BN, and a signed quantizer on the linear
    bottleneck output. With a skip, both add inputs share one signed quantizer (one scale), as in
    :class:`QuantBlock`."""

    def __init__(self, block: nn.Module, spec: QuantSpec, stream_bits: int):
        super().__init__()
        wq = _weight_quant(spec)
        self.expand = hasattr(block, "conv_pwl")
        if self.expand:  # InvertedResidual: 1x1 expand, 3x3 depthwise, 1x1 linear projection
            self.conv_pw, self.bn1 = _conv(block.conv_pw, wq), _plain_bn(block.bn1)
            self.act1 = _inner_act(spec.act_bits, spec.scaling)
            self.pad_dw, self.conv_dw = _bipolar_conv(block.conv_dw, wq, spec.act_bits)
            self.bn2 = _plain_bn(block.bn2)
            self.act2 = _inner_act(spec.act_bits, spec.scaling)
            self.conv_pwl, self.bn3 = _conv(block.conv_pwl, wq), _plain_bn(block.bn3)
        else:  # DepthwiseSeparableConv: 3x3 depthwise, 1x1 linear projection
            self.pad_dw, self.conv_dw = _bipolar_conv(block.conv_dw, wq, spec.act_bits)
            self.bn1 = _plain_bn(block.bn1)
            self.act1 = _inner_act(spec.act_bits, spec.scaling)
            self.conv_pw, self.bn2 = _conv(block.conv_pw, wq), _plain_bn(block.bn2)
        self.has_skip = bool(getattr(block, "has_skip", False))
        self.add_quant = _signed_act(stream_bits, spec.scaling) if self.has_skip else None
        self.act_out = _signed_act(stream_bits, spec.scaling)

    def forward(self, x):
        if self.expand:
            out = self.act1(self.bn1(self.conv_pw(x)))
            out = self.act2(self.bn2(self.conv_dw(self.pad_dw(out))))
            out = self.bn3(self.conv_pwl(out))
        else:
            out = self.act1(self.bn1(self.conv_dw(self.pad_dw(x))))
            out = self.bn2(self.conv_pw(out))
        if self.has_skip:
            out = self.add_quant(out) + self.add_quant(x)
        return self.act_out(out)


class QuantMobileNetV2(_QuantNet):
    """The twin of a timm MobileNetV2: its topology with Brevitas layers and timm's names."""

    def __init__(self, original: nn.Module, spec: QuantSpec):
        super().__init__(spec)
        stream_bits = self.stream_bits
        self.conv_stem, self.bn1 = _conv(original.conv_stem, self.edge), _plain_bn(original.bn1)
        self.act1 = _stream_act(stream_bits, spec.scaling)
        self.blocks = nn.Sequential(*[nn.Sequential(*[QuantInvertedResidual(b, spec, stream_bits) for b in stage])
                                      for stage in original.blocks])
        self.conv_head, self.bn2 = _conv(original.conv_head, _weight_quant(spec)), _plain_bn(original.bn2)
        self.act2 = _stream_act(stream_bits, spec.scaling)
        self._add_head("classifier", original.classifier)

    def forward(self, x):
        x = self.act1(self.bn1(self.conv_stem(self.input_quant(x))))
        return self._classify(self.act2(self.bn2(self.conv_head(self.blocks(x)))))


def create_twin(original: nn.Module, spec: QuantSpec, init_from_original: bool = True) -> nn.Module:
    """Build the twin of ``original`` (a ResNet or a MobileNetV2) and copy its weights, BN statistics
    and classifier (:func:`create_quantized` with a twin's spec)."""
    return create_quantized(original, spec, init_from_original)


def create_quantized(original: nn.Module, spec: QuantSpec, init_from_original: bool = True) -> nn.Module:
    """The Brevitas network of ``original`` at the bit widths of ``spec``, module for module, with
    its weights, BN statistics and classifier copied: a twin, or the FPGA's n-bit original."""
    family = model_family(original)
    if family == "resnet":
        twin = QuantResNet(original, spec)
    elif family == "mobilenetv2":
        twin = QuantMobileNetV2(original, spec)
    else:
        raise ValueError(f"cannot build a twin of {type(original).__name__}: only timm ResNets and MobileNetV2s")
    if init_from_original:
        initialize_from(twin, original)
    return twin


def initialize_from(twin: nn.Module, original: nn.Module) -> list[str]:
    """Copy every parameter/buffer whose name and shape match; return the names copied."""
    source = original.state_dict()
    target = twin.state_dict()
    matched = {k: v for k, v in source.items() if k in target and target[k].shape == v.shape}
    twin.load_state_dict(matched, strict=False)
    return sorted(matched)


def topology(model: nn.Module) -> list[tuple[str, str, tuple]]:
    """(name, kind, weight shape) of every conv and linear layer, for comparing the two networks."""
    rows = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            rows.append((name, "conv", tuple(module.weight.shape), module.stride))
        elif isinstance(module, nn.Linear):
            rows.append((name, "linear", tuple(module.weight.shape), None))
    return rows


class Normalize(nn.Module):
    """uint8 NCHW images (0..255) to normalized float NCHW."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype == torch.uint8:
            images = images.float().div_(255.0)
        return (images - self.mean) / self.std


# --------------------------------------------------------------------------- checkpoints

# What a checkpoint holds (``meta["kind"]``): the float original, a twin, or the original as the
# FPGA runs it (post-training quantized, hw_quantize_original).
KINDS = ("original", "twin", "original_quant")


def input_meta(data_meta: dict, input_size: int | None = None) -> dict:
    """Dataset facts a network is built from; ``input_size`` crops the cached images (ImageNet)."""
    meta = {k: data_meta[k] for k in ("num_classes", "channels", "image_size", "mean", "std", "dataset")}
    meta["image_size"] = int(input_size or data_meta["image_size"])
    return meta


def checkpoint_meta(kind: str, model_cfg: dict, data_meta: dict, spec: QuantSpec | None = None, **extra) -> dict:
    """The metadata a checkpoint carries: enough for :func:`load_trained` to rebuild it."""
    if kind not in KINDS:
        raise ValueError(f"checkpoint kind {kind!r}: use one of {KINDS}")
    if kind != "original":  # a quantized network never loads the original's pretrained weights again
        model_cfg = {k: v for k, v in model_cfg.items() if k != "pretrained_file"}
    return {"kind": kind, "model_cfg": model_cfg, "data_meta": data_meta,
            "quant_spec": spec.__dict__ if spec else None, **extra}


def build_model(kind: str, model_cfg: dict, data_meta: dict, spec: QuantSpec | None = None) -> nn.Module:
    """Build the original (``kind='original'``) or a quantized network (a twin, the FPGA's original)
    from its checkpoint metadata."""
    if kind not in KINDS:
        raise ValueError(f"checkpoint kind {kind!r}: use one of {KINDS}")
    quantized = kind != "original"
    pretrained = None if quantized or "pretrained_file" not in model_cfg else model_cfg["pretrained_file"]
    original = create_original(model_cfg["model"], data_meta["num_classes"], data_meta["channels"],
                               data_meta["image_size"], pretrained_file=pretrained,
                               **(model_cfg["model_kwargs"] if "model_kwargs" in model_cfg else {}))
    return create_quantized(original, spec, init_from_original=False) if quantized else original


def load_checkpoint(path, map_location="cpu") -> dict:
    """Load a checkpoint written by :func:`twindnn.train.save_checkpoint`, with a clear error."""
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"checkpoint {path} does not exist; run the training rule first.") from err
    except Exception as err:  # torch raises several types on truncated/corrupt files
        raise RuntimeError(
            f"checkpoint {path} is corrupt or unreadable ({type(err).__name__}: {err}). "
            "Delete it and re-run the rule to retrain."
        ) from err
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise RuntimeError(f"checkpoint {path} has no state_dict; it was not written by twindnn. Delete it and retrain.")
    return ckpt


def load_trained(path, map_location="cpu") -> tuple[nn.Module, dict]:
    """A trained network rebuilt from its checkpoint (architecture from its metadata), in eval
    mode, and that metadata: one read of the file."""
    ckpt = load_checkpoint(path, map_location)
    meta = ckpt["meta"]
    # checkpoints written before the spec became role-neutral call it twin_spec
    spec_fields = meta["quant_spec"] if "quant_spec" in meta else meta["twin_spec"]
    spec = QuantSpec(**spec_fields) if spec_fields else None
    model = build_model(meta["kind"], meta["model_cfg"], meta["data_meta"], spec)
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    return model, meta
