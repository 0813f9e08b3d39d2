"""The config boundary: defaults only in the schema, checks across keys before any job, stage params."""
import copy
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from twindnn import config
from twindnn.cascade import gate_names

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())


def tiny() -> dict:
    return yaml.safe_load((ROOT / "config" / "tiny.yaml").read_text())


BAD = [
    ("twin on the FPGA not in twins", lambda c: c["hardware"].update(twins=["w1a1", "w2a2"]),
     "hardware.twins names ['w2a2']"),
    ("input larger than the cache", lambda c: c["dataset"].update(input_size=32), "dataset.input_size (32)"),
    ("run_name escapes results/", lambda c: c.update(run_name=".."), "run_name '..' escapes"),
    ("no boards", lambda c: c["hardware"].update(boards=[]), "hardware.boards is empty"),
    ("design gate not evaluated", lambda c: c["cascade"].update(gates=["margin", "entropy"]),
     "hardware.design_point.gate 'max_softmax' is not one of cascade.gates"),
    ("board host without vivado", lambda c: c["hardware"].update(board_hosts={"ZCU104": "10.0.0.2"}),
     "hardware.board_hosts names ['ZCU104'] but hardware.vivado is false"),
    ("ternary and weight_bits", lambda c: c["twins"]["t2a2"].update(weight_bits=2),
     "twins.t2a2: give either ternary: true or weight_bits"),
    ("duplicate gates", lambda c: c["cascade"].update(gates=["max_softmax", "margin", "max_softmax"]),
     "cascade.gates lists ['max_softmax'] more than once"),
    ("unknown gate", lambda c: c["cascade"].update(gates=["max_softmax", "logit_magic"]),
     "'logit_magic' is not one of ['max_softmax', 'margin', 'entropy', 'logit_margin']"),
]


@pytest.mark.parametrize("what, edit, message", BAD, ids=[b[0] for b in BAD])
def test_inconsistent_config_is_rejected_naming_the_key(what, edit, message):
    cfg = tiny()
    edit(cfg)
    with pytest.raises(Exception) as err:
        config.validated(cfg)
    assert message in str(err.value), str(err.value)


def test_rejected_before_any_job_runs(tmp_path):
    cfg = tiny()
    cfg["results_dir"] = str(tmp_path / "results")
    cfg["hardware"]["twins"] = ["w2a2"]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    result = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "--configfile", str(path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "hardware.twins names ['w2a2']" in result.stderr
    assert not (tmp_path / "results").exists()


def test_absent_hardware_section_gets_the_schemas_defaults():
    cfg = tiny()
    cfg.pop("hardware")
    config.validated(cfg)
    hw = cfg["hardware"]
    props = SCHEMA["properties"]["hardware"]["properties"]
    assert hw["enabled"] is False
    for key in ("boards", "utilization", "mvau_wwidth_max", "check_images", "fps_start"):
        assert hw[key] == props[key]["default"], key
    assert hw["design_point"]["gate"] == props["design_point"]["properties"]["gate"]["default"]
    assert hw["original_quant"]["qat_lr"] == props["original_quant"]["properties"]["qat_lr"]["default"]


def test_schema_gate_enums_come_from_the_registry():
    schema = config.schema_with_gates(copy.deepcopy(SCHEMA))
    assert schema["properties"]["cascade"]["properties"]["gates"]["items"]["enum"] == gate_names()


def _schema_keys(node, keys=None) -> set[str]:
    keys = set() if keys is None else keys
    if isinstance(node, dict):
        for name in node.get("properties") or {}:
            keys.add(name)
        for value in node.values():
            _schema_keys(value, keys)
    elif isinstance(node, list):
        for value in node:
            _schema_keys(value, keys)
    return keys


def test_keys_documented_in_config_readme_are_accepted_by_the_schema():
    documented = set(re.findall(r"`([a-z_]+)`", (ROOT / "config" / "README.md").read_text()))
    accepted = _schema_keys(SCHEMA)
    # backticked words that are values, not keys
    values = {"sgd", "adamw", "crop", "crop_flip", "random_resized_crop", "fashion_mnist", "cifar10", "imagenet",
              "auto", "cpu", "cuda", "idx", "pickle", "image_folder", "torchvision", "results", "max_softmax",
              "margin", "entropy", "true", "false", "description", "default", "per_tensor", "per_channel"} | set(gate_names())
    assert documented - values <= accepted, sorted(documented - values - accepted)


def test_every_optional_schema_key_has_its_default_and_a_description():
    """The schema is the single home of defaults: a key a config may leave out has one there."""
    def walk(node, path):
        required = set(node.get("required", []))
        for name, sub in (node.get("properties") or {}).items():
            sub = SCHEMA["definitions"]["training"] if "$ref" in sub else sub
            key = f"{path}{name}"
            assert "description" in sub or "properties" in sub, f"{key} has no description"
            if sub.get("type") == "object" and "properties" in sub:
                walk(sub, key + ".")
            elif name not in required and key not in ("description",):
                assert "default" in sub, f"{key} has no default"
    walk(SCHEMA, "")


def test_stage_params_are_canonical_and_only_what_the_stage_reads():
    a, b = config.validated(tiny()), tiny()
    b = config.validated(yaml.safe_load(yaml.safe_dump(b, sort_keys=True)))  # keys in another order
    assert repr(config.train_original_stage(a).to_params()) == repr(config.train_original_stage(b).to_params())
    c = copy.deepcopy(a)
    c["compute"]["mem_mb"] = 123
    c["hardware"]["boards"].append("U250")
    c["cascade"]["gates"].append("entropy" if "entropy" not in c["cascade"]["gates"] else "margin")
    for make in (config.train_original_stage, config.quantize_stage, config.export_stage, config.prepare_stage,
                 config.data_stage, config.logits_stage, config.throughput_stage):
        assert make(a).to_params() == make(c).to_params(), make.__name__
    d = copy.deepcopy(a)
    d["original"]["training"]["lr"] = 0.05
    assert config.train_original_stage(a).fingerprint() != config.train_original_stage(d).fingerprint()
    assert config.TrainStage.from_params(config.train_original_stage(a).to_params()) == config.train_original_stage(a)
