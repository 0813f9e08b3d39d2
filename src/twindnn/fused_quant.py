"""Fused activation quantizers: Brevitas's own arithmetic in one compiled kernel per quantizer.

A twin's training step spends about half its CPU time in Brevitas's activation quantizers: each
is eight elementwise passes forward (divide, add the zero point, round, two ``where`` clamps,
subtract, multiply) and as many backward, over the largest tensors of the network. This module
swaps, for the duration of a ``with`` block, the elementwise part of every activation quantizer
for the same operations in the same order, compiled by ``torch.compile`` (TorchInductor) into one
fused loop forward and one backward. Brevitas still computes every scale, zero point and bit
width, from the same parameters, and still builds the ``QuantTensor`` the next layer reads; only
the per-element arithmetic is fused. The straight-through estimators are Brevitas's: rounding
passes the gradient unchanged, the clamp blocks it outside the range, the binary sign passes it.

Patched (exactly these, everything else keeps its own forward):

- ``IntQuant`` inside an activation's ``RescalingIntQuant`` (QuantReLU, QuantIdentity, the input
  quantizer), when it rounds with ``RoundSte``, clamps with ``TensorClamp`` and has no
  quantization delay; a QuantReLU's ReLU joins the kernel where its scale is a parameter or a
  constant (a scale from statistics reads the ReLU's output, so the ReLU stays in front);
- ``ClampedBinaryQuant`` of an activation (bipolar ``SignedBinaryActPerTensorConst``).

Weight quantizers are left alone: weights are small, their quantizers are not where the time goes.
Export never runs inside the block, so exported graphs are Brevitas's. ``tests/test_fused_quant.py``
holds forward values and every gradient equal to Brevitas's own path on small twins.

Where TorchInductor cannot compile (no C++ compiler on the machine), the first call fails and the
same functions run uncompiled from then on, one operator at a time as Brevitas's own path runs
them, with a warning: slower, the same numbers.
"""

from __future__ import annotations

import contextlib
import types
import warnings

import brevitas.config
import torch
from brevitas.core.function_wrapper import Identity, RoundSte, TensorClamp
from brevitas.core.quant.binary import ClampedBinaryQuant
from brevitas.core.quant.delay import _NoDelay
from brevitas.core.quant.int import RescalingIntQuant
from brevitas.core.quant.int_base import IntQuant
from brevitas.core.scaling.standalone import ConstScaling, ParameterScaling
from brevitas.core.zero_point import ZeroZeroPoint
from brevitas.proxy.runtime_quant import FusedActivationQuantProxy
from torch import Tensor
from torch.autograd import Function

_COMPILED: dict[str, object] = {}
_BROKEN: list[str] = []  # set once compilation failed on this machine: eager from then on


class _RoundSte(Function):
    """``torch.round`` with the identity gradient (Brevitas's ``round_ste``)."""

    @staticmethod
    def forward(ctx, x):
        return torch.round(x)

    @staticmethod
    def backward(ctx, grad):
        return grad


class _BinarySignSte(Function):
    """Brevitas's ``binary_sign`` (+1 where x >= 0, else -1) with the identity gradient."""

    @staticmethod
    def forward(ctx, x):
        return torch.ge(x, 0.0).to(x.dtype) * 2.0 - 1.0

    @staticmethod
    def backward(ctx, grad):
        return grad


def int_fake_quant(x: Tensor, scale: Tensor, zero_point: Tensor, min_int: Tensor, max_int: Tensor,
                   channels_last: bool = False, relu: bool = False) -> Tensor:
    """``IntQuant.forward`` of Brevitas 0.13: to_int, minus the zero point, times the scale.

    Brevitas clamps with two ``where``s (``tensor_clamp``); ``torch.clamp`` with tensor bounds gives
    the same values and the same gradient (it passes where min <= y <= max, as the two wheres do)
    and, unlike the wheres, TorchInductor vectorizes it (measured: 4 ms against 50 ms forward on a
    128x64x28x28 tensor, 2 threads). ``relu``: the proxy's ReLU in front, fused too."""
    if relu:
        x = torch.relu(x)
    y = x / scale
    y = y + zero_point
    y = _RoundSte.apply(y)
    y = torch.clamp(y, min_int, max_int)
    y = y - zero_point
    return _layout(y * scale, channels_last)


def binary_fake_quant(x: Tensor, scale: Tensor, channels_last: bool = False) -> Tensor:
    """``ClampedBinaryQuant``'s elementwise part: clamp to [-scale, scale], sign (STE), times scale."""
    y = torch.clamp(x, -scale, scale)
    return _layout(_BinarySignSte.apply(y) * scale, channels_last)


def _layout(y: Tensor, channels_last: bool) -> Tensor:
    # A one-channel input is both layouts at once, and oneDNN then gives the stem convolution an
    # NCHW output: every later convolution would convert it (measured: 30 ms of a 310 ms step).
    if channels_last and y.dim() == 4:
        return y.contiguous(memory_format=torch.channels_last)
    return y


def _kernel(name: str):
    """The compiled version of ``name`` (one compile per process, shapes dynamic), or the eager one
    once compilation has failed on this machine."""
    eager = {"int": int_fake_quant, "binary": binary_fake_quant}[name]
    if _BROKEN:
        return eager
    if name not in _COMPILED:
        # One graph per quantizer kind, rank, layout, grad mode and dtype: more than dynamo's default
        # of 8 in a twin that trains and validates (it would run the rest unfused, only logging it).
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
        # Inductor checks each vector ISA the CPU reports by compiling and loading a test library in
        # a fresh Python process, 12 s of a twin's first step on 2 cores of the AMD EPYC kind;
        # trusting the CPU's flags for the base ISAs takes 7 s off with Inductor's cache empty, 4 s
        # with it warm (the bf16 and VNNI checks still run). A compiler that cannot build the widest
        # ISA the CPU reports fails the compile (where Inductor would have fallen back to a narrower
        # one), and the fallback below runs the same functions unfused. A TORCHINDUCTOR_VEC_ISA_OK
        # set in the environment is left as it is.
        import torch._inductor.config as inductor_config

        if inductor_config.cpp.vec_isa_ok is None:
            inductor_config.cpp.vec_isa_ok = True
        # Under bf16 autocast (GPUs) Brevitas rounds every intermediate to bf16: so does the kernel.
        _COMPILED[name] = torch.compile(eager, dynamic=True, options={"emulate_precision_casts": True})
    return _COMPILED[name]


def _call(name: str, *args):
    try:
        return _kernel(name)(*args)
    except Exception as err:  # noqa: BLE001 - any compiler failure: the same functions, uncompiled
        if _BROKEN:
            raise
        _BROKEN.append(f"{type(err).__name__}: {err}".splitlines()[0][:300])
        warnings.warn(f"torch.compile could not fuse the activation quantizers ({_BROKEN[0]}); "
                      "training goes on with them unfused, one operator at a time (the same numbers, "
                      "slower; training.fused_quant: false skips the attempt).", stacklevel=2)
        return _kernel(name)(*args)


# The patched forwards are methods bound to their module, their settings attributes of it: a deep
# copy of the network made inside the block (timm's ModelEmaV3, say) gets forwards bound to its own
# modules, not ones that would read the original's parameters.


def _int_forward(self, scale, zero_point, bit_width, x):
    channels_last, relu = self._twindnn_fused
    return _call("int", self.input_view_impl(x), scale, zero_point, self.min_int(bit_width),
                 self.max_int(bit_width), channels_last, relu)


def _binary_forward(self, x):
    scale = self.scaling_impl(x)
    return _call("binary", x, scale, self._twindnn_fused[0]), scale, self.zero_point(), self.bit_width()


def _skip_activation(self, x):
    # The ReLU moves into the quantizer's kernel; nothing the quantizer computes before it reads x.
    return self.tensor_quant(x)


def _fusable(model: torch.nn.Module, channels_last: bool = False) -> list[tuple]:
    """(module, its fused forward, its settings) for every activation quantizer this module can fuse."""
    found = []
    for proxy in model.modules():
        if not isinstance(proxy, FusedActivationQuantProxy):
            continue
        quant = proxy.tensor_quant
        if isinstance(quant, RescalingIntQuant) and type(quant.int_quant) is IntQuant:
            inner = quant.int_quant
            if (type(inner.float_to_int_impl) is RoundSte and type(inner.input_view_impl) is Identity
                    and type(inner.tensor_clamp_impl) is TensorClamp
                    and type(inner.delay_wrapper.delay_impl) is _NoDelay):
                # A ReLU in front fuses too where neither the scale nor the zero point reads the input.
                relu = (type(proxy.activation_impl) is torch.nn.ReLU
                        and type(quant.scaling_impl) in (ParameterScaling, ConstScaling)
                        and type(quant.zero_point_impl) is ZeroZeroPoint and not quant.observer_only)
                found.append((inner, _int_forward, (channels_last, relu)))
                if relu:
                    found.append((proxy, _skip_activation, None))
        elif type(quant) is ClampedBinaryQuant and type(quant.tensor_clamp_impl) is TensorClamp \
                and type(quant.delay_wrapper.delay_impl) is _NoDelay:
            found.append((quant, _binary_forward, (channels_last,)))
    return found


@contextlib.contextmanager
def fused_activation_quant(model: torch.nn.Module, enabled: bool = True, channels_last: bool = False):
    """Within the block, ``model``'s activation quantizers run fused; yields how many were fused.

    ``channels_last``: the quantized feature maps come out channels-last (the layout the training
    loop gives the network), whatever layout came in. On exit every module has its own forward
    back (also when the block raises)."""
    # With BREVITAS_JIT=1 the quantizers are TorchScript modules, whose forward cannot be replaced.
    patched = _fusable(model, channels_last) if enabled and not brevitas.config.JIT_ENABLED else []
    for module, forward, settings in patched:
        module.forward = types.MethodType(forward, module)
        if settings is not None:
            module._twindnn_fused = settings
    try:
        yield sum(settings is not None for _, _, settings in patched)
    finally:
        for module, _, _ in patched:
            module.__dict__.pop("forward", None)
            module.__dict__.pop("_twindnn_fused", None)
