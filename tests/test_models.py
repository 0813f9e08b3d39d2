import pytest
import torch

from twindnn.models import (
    QuantSpec,
    create_original,
    create_twin,
    initialize_from,
    load_checkpoint,
    load_trained,
    model_family,
    topology,
)

SMALL = dict(channels=(8, 8, 16, 16))
SPECS = {
    "w1a1": {"weight_bits": 1, "act_bits": 1},
    "w1a2": {"weight_bits": 1, "act_bits": 2},
    "w2a2": {"weight_bits": 2, "act_bits": 2},
    "t2a2": {"ternary": True, "act_bits": 2},
    "t2a8_pc": {"ternary": True, "act_bits": 8, "weight_scaling": "per_channel"},  # the paper's twin
}


@pytest.fixture(scope="module")
def original():
    torch.manual_seed(0)
    return create_original("resnet18", 10, 3, 32, **SMALL).eval()


def test_small_input_stem(original):
    assert original.conv1.kernel_size == (3, 3) and original.conv1.stride == (1, 1)
    assert isinstance(original.maxpool, torch.nn.Identity)
    big = create_original("resnet18", 10, 3, 224, **SMALL)
    assert big.conv1.kernel_size == (7, 7)


def test_unknown_model_is_named():
    with pytest.raises(ValueError, match="resnet_nope"):
        create_original("resnet_nope", 10, 3, 32)


@pytest.mark.parametrize("name", list(SPECS))
def test_twin_mirrors_original(original, name):
    twin = create_twin(original, QuantSpec.from_config(name, SPECS[name]))
    assert topology(twin) == topology(original)
    out = twin.eval()(torch.randn(4, 3, 32, 32))
    assert out.shape == (4, 10)
    copied = initialize_from(twin, original)
    # every conv weight, every BN statistic and the classifier weight come from the original
    assert "layer4.1.conv2.weight" in copied and "layer2.0.downsample.1.running_var" in copied
    assert "fc.weight" in copied and "fc.bias" not in copied
    assert torch.equal(twin.layer3[0].conv1.weight, original.layer3[0].conv1.weight)


def test_quantized_values(original):
    twin = create_twin(original, QuantSpec.from_config("w1a1", SPECS["w1a1"])).eval()
    w = twin.layer1[0].conv1.quant_weight()
    assert set((w.value / w.scale).unique().tolist()) == {-1.0, 1.0}
    assert twin.conv1.quant_weight().bit_width.item() == 8 and twin.fc.quant_weight().bit_width.item() == 8
    ternary = create_twin(original, QuantSpec.from_config("t2a2", SPECS["t2a2"])).eval()
    w = ternary.layer2[1].conv2.quant_weight()
    assert len((w.value / w.scale).round().unique()) <= 3
    assert set((w.value / w.scale).round().unique().tolist()) <= {-1.0, 0.0, 1.0}


def test_papers_twin_is_ternary_with_one_scale_per_output_channel(original):
    twin = create_twin(original, QuantSpec.from_config("t2a8_pc", SPECS["t2a8_pc"])).eval()
    w = twin.layer2[1].conv2.quant_weight()
    assert w.scale.shape == (twin.layer2[1].conv2.out_channels, 1, 1, 1)
    assert len(w.scale.unique()) > 1  # channels really have their own scales
    assert set(w.int().unique().tolist()) <= {-1, 0, 1}
    with pytest.raises(ValueError, match="binary weights have one constant scale"):
        QuantSpec.from_config("w1", {"weight_bits": 1, "act_bits": 1, "weight_scaling": "per_channel"})


def test_residual_add_inputs_share_one_unsigned_scale(original):
    """FINN needs both add inputs from one quantizer (same scale), unsigned."""
    twin = create_twin(original, QuantSpec.from_config("w1a1", SPECS["w1a1"])).eval()
    seen = []
    for block in [b for layer in (twin.layer1, twin.layer2, twin.layer3, twin.layer4) for b in layer]:
        block.add_quant.register_forward_hook(lambda m, i, o: seen.append(o))
    twin(torch.randn(2, 3, 32, 32))
    assert len(seen) == 16  # two inputs per block, 8 blocks
    for first, second in zip(seen[::2], seen[1::2]):
        assert torch.equal(first.scale, second.scale)
        assert not first.signed and not second.signed
        assert first.value.min() >= 0 and second.value.min() >= 0


def test_checkpoint_roundtrip_and_corruption(original, tmp_path):
    from twindnn.train import save_checkpoint

    meta = {"kind": "original", "model_cfg": {"model": "resnet18", "model_kwargs": SMALL},
            "data_meta": {"num_classes": 10, "channels": 3, "image_size": 32}, "twin_spec": None}
    path = tmp_path / "m.pt"
    save_checkpoint(path, {"state_dict": original.state_dict(), "meta": meta})
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(load_trained(path)[0](x), original(x))
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(RuntimeError, match=r"m\.pt is corrupt.*Delete it"):
        load_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="run the training rule"):
        load_checkpoint(tmp_path / "absent.pt")


def test_binary_maps_pad_with_minus_one(original):
    """A conv fed by bipolar activations pads with -1 (as XNOR hardware does); others pad with 0."""
    import torch.nn.functional as F

    from twindnn.models import BipolarPad

    w1a1 = create_twin(original, QuantSpec("w1a1", 1, 1))
    block = w1a1.layer1[0]
    assert isinstance(block.pad2, BipolarPad) and tuple(block.conv2.padding) == (0, 0)
    assert tuple(block.conv1.padding) == (1, 1)  # fed by the unsigned residual stream: zeros are fine
    w1a2 = create_twin(original, QuantSpec("w1a2", 1, 2))
    assert isinstance(w1a2.layer1[0].pad2, torch.nn.Identity) and tuple(w1a2.layer1[0].conv2.padding) == (1, 1)
    x = torch.ones(1, 2, 3, 3)
    padded = BipolarPad((1, 1))(x)
    assert padded.shape == (1, 2, 5, 5) and padded[0, 0, 0, 0] == -1 and padded[0, 0, 2, 2] == 1
    assert torch.equal(padded, F.pad(x, (1, 1, 1, 1), value=-1.0))


def test_mobilenetv2_twin_mirrors_the_original():
    """A timm MobileNetV2 gets a twin with its names (every weight and BN statistic copied except the
    classifier's bias, which FINN cannot take), a stride-1 stem on small images, and the same output."""
    original = create_original("mobilenetv2_050", 10, 3, 32)
    assert original.conv_stem.stride == (1, 1)
    spec = QuantSpec.from_config("t2a8", {"ternary": True, "act_bits": 8, "weight_scaling": "per_channel"})
    twin = create_twin(original, spec)
    copied = initialize_from(twin, original)
    assert sorted(set(original.state_dict()) - set(copied)) == ["classifier.bias"]
    assert twin(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert model_family(original) == "mobilenetv2" and model_family(create_original("resnet18", 10, 3, 32)) == "resnet"


def test_unsupported_timm_model_is_refused():
    with pytest.raises(ValueError, match="only timm ResNets with a plain stem"):
        create_original("efficientnet_b0", 10, 3, 32)
