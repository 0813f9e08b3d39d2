"""The fused activation quantizers compute what Brevitas's own path computes: the same forward
values, the same gradients, the same trained weights and the same exported graph."""

import copy
import warnings

import pytest
import torch
import torch.nn.functional as F

from twindnn import fused_quant
from twindnn.fused_quant import fused_activation_quant
from twindnn.models import QuantSpec, create_original, create_twin

SPECS = {
    "w1a1": {"weight_bits": 1, "act_bits": 1},  # bipolar activations: ClampedBinaryQuant
    "w1a2": {"weight_bits": 1, "act_bits": 2},  # 2-bit QuantReLU: IntQuant with the ReLU fused
    "t2a8_pc": {"ternary": True, "act_bits": 8, "weight_scaling": "per_channel"},  # the paper's twin
}


def _twin(name, channels=8):
    torch.manual_seed(0)
    original = create_original("resnet18", 10, 3, 16, layers=[1, 1, 1, 1], channels=(channels, 8, 16, 16))
    return create_twin(original, QuantSpec.from_config(name, SPECS[name])).train()


def _grads(model, x, y, fused, channels_last):
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    model.zero_grad(set_to_none=True)
    with fused_activation_quant(model, enabled=fused, channels_last=channels_last) as count:
        out = model(x)
        F.cross_entropy(out, y).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out.detach(), grads, count


@pytest.mark.parametrize("name", list(SPECS))
@pytest.mark.parametrize("channels_last", [False, True])
def test_forward_and_gradients_equal_brevitas(name, channels_last):
    twin = _twin(name)
    x, y = torch.randn(6, 3, 16, 16) * 2, torch.randint(0, 10, (6,))
    ref_out, ref_grads, none = _grads(copy.deepcopy(twin), x, y, False, channels_last)
    out, grads, count = _grads(copy.deepcopy(twin), x, y, True, channels_last)
    assert none == 0 and count >= 10  # every activation quantizer of the twin, none when disabled
    assert torch.equal(out, ref_out)
    assert grads.keys() == ref_grads.keys() and len(grads) > 20
    for key in grads:  # scale gradients are sums: the fused kernel may add in another order
        torch.testing.assert_close(grads[key], ref_grads[key], rtol=1e-4, atol=1e-6, msg=key)
    # the learned activation scales really get a gradient through the fused kernel
    assert any("act_quant" in k and grads[k].abs().sum() > 0 for k in grads)
    # and, where a C++ compiler exists, the kernels were compiled (Inductor trusting the CPU's vector
    # ISA flags), not run unfused
    import shutil

    import torch._inductor.config as inductor_config

    if shutil.which("g++") or shutil.which("c++"):
        assert not fused_quant._BROKEN and "int" in fused_quant._COMPILED and inductor_config.cpp.vec_isa_ok


def test_block_restores_brevitas_forward():
    twin = _twin("w1a2")
    with pytest.raises(RuntimeError, match="inside"), fused_activation_quant(twin) as count:
        assert count > 0 and any("forward" in m.__dict__ for m in twin.modules())
        raise RuntimeError("inside")
    assert not any("forward" in m.__dict__ for m in twin.modules())


def test_trained_twin_exports_the_same_graph(tmp_path):
    from twindnn.hardware.export import export_qonnx_model

    meta = {"mean": [0.5] * 3, "std": [0.25] * 3, "image_size": 16, "channels": 3}
    x, y = torch.randn(8, 3, 16, 16), torch.randint(0, 10, (8,))
    exported = []
    for fused in (False, True):
        twin = _twin("w1a2")
        optimizer = torch.optim.SGD(twin.parameters(), lr=0.05)
        with fused_activation_quant(twin, enabled=fused):
            for _ in range(3):
                optimizer.zero_grad()
                F.cross_entropy(twin(x), y).backward()
                optimizer.step()
        path = export_qonnx_model(twin.eval(), meta, tmp_path / f"fused_{fused}.onnx")
        exported.append(path.read_bytes())
    assert exported[0] == exported[1]


def test_without_a_compiler_training_goes_on_unfused(monkeypatch):
    def no_compiler(fn, **kwargs):
        def fails(*args):
            raise RuntimeError("InductorError: no C++ compiler found")
        return fails

    monkeypatch.setattr(fused_quant, "_COMPILED", {})
    monkeypatch.setattr(fused_quant, "_BROKEN", [])
    monkeypatch.setattr(torch, "compile", no_compiler)
    twin = _twin("w1a1")
    x, y = torch.randn(4, 3, 16, 16), torch.randint(0, 10, (4,))
    ref_out, _, _ = _grads(copy.deepcopy(twin), x, y, False, False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out, _, _ = _grads(twin, x, y, True, False)
    assert torch.equal(out, ref_out)
    assert any("no C++ compiler" in str(w.message) and "unfused" in str(w.message) for w in caught)


def test_a_copy_made_inside_the_block_reads_its_own_parameters():
    """timm's ModelEmaV3 deep-copies the network while it trains fused: the copy's quantizers must
    use the copy's scales."""
    twin = _twin("w1a2")
    x = torch.randn(4, 3, 16, 16)
    with fused_activation_quant(twin):
        copy_ = copy.deepcopy(twin)
        with torch.no_grad():
            for name, p in copy_.named_parameters():
                if "act_quant" in name:
                    p.mul_(0.37)  # other activation scales in the copy only
        fused_out = copy_(x)  # train mode: batch statistics, so the scales show in the logits
        twin_out = twin(x)
    plain = copy.deepcopy(copy_)
    for m in plain.modules():
        m.__dict__.pop("forward", None)
        m.__dict__.pop("_twindnn_fused", None)
    assert torch.equal(fused_out, plain(x))
    assert not torch.equal(fused_out, twin_out)
