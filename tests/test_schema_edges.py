"""The schema decides every edge of the config: null sections, empty and repeated list entries,
options that the dataset or the boards leave unread, and names that must be configured elsewhere.
Each refusal names the key (``<key>: <what is wrong>: <the fix>``), before any job runs."""
import copy
import inspect
import re
from pathlib import Path

import pytest
import yaml

from twindnn import config

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())


def tiny() -> dict:
    return yaml.safe_load((ROOT / "config" / "tiny.yaml").read_text())


def at(cfg: dict, dotted: str):
    """(the mapping holding ``dotted``, its last key)."""
    *parents, last = dotted.split(".")
    for part in parents:
        cfg = cfg[part]
    return cfg, last


def put(dotted: str, value):
    def edit(cfg):
        parent, last = at(cfg, dotted)
        parent[last] = copy.deepcopy(value)
    return edit


def refused(cfg: dict) -> str:
    with pytest.raises(config.ConfigError) as err:
        config.validated(cfg)
    return str(err.value)


def resolve(node: dict) -> dict:
    return config._resolve(node, SCHEMA)


def types(node: dict) -> set:
    t = node.get("type")
    return set(t) if isinstance(t, list) else {t} if t else set()


# ---------------------------------------------------------------- (a) every array states its edges


def schema_nodes(node, path="schema"):
    """Every subschema (dicts, recursively: definitions, properties, items, additionalProperties,
    propertyNames, allOf/if/then/else), with a path naming where it is."""
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            if key in ("errorMessage", "default", "enum", "const", "required", "examples"):
                continue  # data, not subschemas
            yield from schema_nodes(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from schema_nodes(value, f"{path}[{i}]")


def test_every_schema_array_says_whether_it_may_be_empty_and_hold_duplicates():
    arrays = [(path, node) for path, node in schema_nodes(SCHEMA)
              if "array" in types(node) or "items" in node]
    assert len(arrays) >= 5, [p for p, _ in arrays]  # gates, target_recovery, forwarded_fractions, boards, twins
    missing = [f"{path}: minItems" for path, node in arrays if not isinstance(node.get("minItems"), int)]
    missing += [f"{path}: uniqueItems" for path, node in arrays if not isinstance(node.get("uniqueItems"), bool)]
    assert not missing, missing


def test_the_walk_finds_arrays_everywhere():
    """The walker itself: an array hidden in definitions, items or additionalProperties is found."""
    hidden = {"definitions": {"d": {"type": "array"}},
              "properties": {"a": {"type": "object", "additionalProperties": {"type": ["null", "array"]}},
                             "b": {"items": {"type": "array", "items": {}}}}}
    found = {path for path, node in schema_nodes(hidden) if "array" in types(node) or "items" in node}
    assert found == {"schema.definitions.d", "schema.properties.a.additionalProperties", "schema.properties.b",
                     "schema.properties.b.items"}, found


def test_nested_optional_keys_have_a_default_and_a_description():
    """Also inside sections whose type admits null (test_config's walk stops at those)."""
    def walk(node, path):
        node = resolve(node)
        required = set(node.get("required", []))
        for name, sub in (node.get("properties") or {}).items():
            sub = resolve(sub)
            key = f"{path}{name}"
            assert "description" in sub or "properties" in sub, f"{key} has no description"
            if "object" in types(sub) and "properties" in sub:
                walk(sub, key + ".")
            if name not in required and path:  # top-level optional keys: test_config checks those
                assert "default" in sub, f"{key} has no default"
    walk(SCHEMA, "")


def test_error_messages_fill_only_known_placeholders():
    keys = {"value"}

    def collect(node, prefix):
        node = resolve(node)
        for name, sub in (node.get("properties") or {}).items():
            keys.add(prefix + name)
            collect(sub, prefix + name + ".")
    collect(SCHEMA, "")
    for path, node in schema_nodes(SCHEMA):
        messages = node.get("errorMessage")
        for message in (messages.values() if isinstance(messages, dict) else [messages] if messages else []):
            for placeholder in re.findall(r"\{([A-Za-z_][A-Za-z0-9_.]*)\}", message):
                assert placeholder in keys, f"{path}: {{{placeholder}}} names no key"


def test_board_hosts_name_the_boards_of_the_board_enum():
    hw = SCHEMA["properties"]["hardware"]["properties"]
    assert resolve(hw["board_hosts"]["propertyNames"]) == hw["boards"]["items"]
    files = sorted(p.stem for p in (ROOT / "hardware" / "boards").glob("*.yaml"))
    assert sorted(hw["boards"]["items"]["enum"]) == files


def test_options_left_unread_must_keep_their_default():
    """The if/then rules pin an unread option to its default (a default value is harmless, so the
    committed configs that spell it out still validate); only format torchvision asks for a value."""
    pinned = []

    def walk(node, path):
        node = resolve(node)
        props = node.get("properties") or {}
        rules = list(node.get("allOf") or []) + ([node] if "then" in node else [])
        for rule in rules:
            for name, sub in ((rule.get("then") or {}).get("properties") or {}).items():
                if "const" in sub and "default" in resolve(props.get(name, {})):
                    pinned.append((f"{path}{name}", sub["const"], resolve(props[name])["default"]))
        for name, sub in props.items():
            walk(sub, f"{path}{name}.")
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], f"{path}<name>.")
    walk(SCHEMA, "")
    walk(SCHEMA["definitions"]["training"], "<training>.")
    assert len(pinned) >= 6, pinned
    wrong = [p for p in pinned if p[1] != p[2] and p[:2] != ("dataset.download", True)]
    assert not wrong, wrong


def test_every_committed_config_validates():
    for path in sorted((ROOT / "config").glob("*.yaml")):
        config.validated(yaml.safe_load(path.read_text()))


# ---------------------------------------------------------------- (b) null sections

NULL_IS_AN_ERROR = ["dataset", "original", "original.training", "twins", "twins.w1a1", "twin", "twin.training",
                    "cascade", "throughput", "compute", "hardware"]
NULL_IS_THE_DEFAULT = ["hardware.time_shared", "hardware.design_point", "hardware.original_quant",
                       "hardware.overheads", "hardware.sensitivity",
                       "hardware.board_hosts", "original.model_kwargs"]


@pytest.mark.parametrize("key", NULL_IS_AN_ERROR)
def test_null_section_is_refused_naming_it(key):
    cfg = tiny()
    put(key, None)(cfg)
    message = refused(cfg)
    assert f"{key}: is empty (null): " in message, message
    assert message.count("\n  - ") == 1, message  # one error: nothing else about the null section


@pytest.mark.parametrize("key, fix", [
    ("compute", "write compute: {} to take every default"),
    ("hardware", "leave the section out"),
    ("twin", "give its keys (training"),
    ("twins", "give at least one twin"),
])
def test_null_section_error_says_the_fix(key, fix):
    cfg = tiny()
    put(key, None)(cfg)
    assert fix in refused(cfg)


def stages(cfg: dict) -> list:
    """Every stage object the config module builds (whatever the stage builders are called)."""
    args = {"config": cfg, "board": cfg["hardware"]["boards"][0], "network": "original_q",
            "twin": sorted(cfg["twins"])[0], "role": "twin"}
    built = []
    for name, fn in inspect.getmembers(config, inspect.isfunction):
        if name.endswith("_stage") and not name.startswith("_"):
            params = inspect.signature(fn).parameters
            if set(params) <= set(args):  # a builder with arguments this test does not know is skipped
                built.append(fn(*[args[p] for p in params]))
    assert built
    return built


@pytest.mark.parametrize("key", NULL_IS_THE_DEFAULT)
def test_null_optional_section_means_its_default(key):
    cfg, ref = tiny(), tiny()
    put(key, None)(cfg)
    parent, last = at(ref, key)
    parent.pop(last, None)  # the same config with the key left out
    config.validated(cfg)
    config.validated(ref)
    assert cfg == ref
    node = SCHEMA
    for part in key.split("."):
        node = resolve(node)["properties"][part]
    assert {"null", "object"} <= types(node) and "null" in node["description"]
    for stage in stages(cfg):  # the stage builders read it without an AttributeError
        stage.to_params()


def every_key(node, prefix=""):
    node = resolve(node)
    for name, sub in (node.get("properties") or {}).items():
        yield prefix + name
        yield from every_key(sub, prefix + name + ".")


@pytest.mark.parametrize("key", sorted(set(every_key(SCHEMA))))
def test_any_key_given_null_is_decided(key):
    """Null anywhere either validates (null is a value the schema admits) or is refused naming the
    key: never an AttributeError or TypeError later."""
    cfg, parent = tiny(), None
    parent = cfg
    for part in key.split(".")[:-1]:  # a section tiny leaves out is given, empty
        parent = parent.setdefault(part, {})
    parent[key.split(".")[-1]] = None
    try:
        config.validated(cfg)
    except config.ConfigError as err:
        assert f"{key}: " in str(err) or f"{key} " in str(err), str(err)
    else:
        stages(cfg)


# ---------------------------------------------------------------- (b) empty and repeated entries

ARRAYS = [  # key, a repeated entry
    ("cascade.gates", "max_softmax"),
    ("cascade.target_recovery", 0.9),
    ("throughput.forwarded_fractions", 0.5),
    ("hardware.boards", "ZCU104"),
    ("hardware.twins", "w1a1"),
]


@pytest.mark.parametrize("key, entry", ARRAYS, ids=[a[0] for a in ARRAYS])
def test_empty_list_is_refused_naming_it(key, entry):
    cfg = tiny()
    put(key, [])(cfg)
    assert f"{key} is empty: " in refused(cfg)


@pytest.mark.parametrize("key, entry", ARRAYS, ids=[a[0] for a in ARRAYS])
def test_repeated_entry_is_refused_naming_it(key, entry):
    cfg = tiny()
    put(key, [entry, entry])(cfg)
    message = refused(cfg)
    assert f"{key} lists [{entry!r}] more than once: " in message, message


def test_numbers_repeat_across_int_and_float():
    cfg = tiny()
    put("throughput.forwarded_fractions", [0, 0.0, 1])(cfg)
    assert "throughput.forwarded_fractions lists [0.0] more than once" in refused(cfg)


def test_no_twins_is_refused():
    cfg = tiny()
    cfg["twins"] = {}
    assert "twins: has no twin: give at least one" in refused(cfg)


# ---------------------------------------------------------------- (b) options the dataset leaves unread

LOCAL = {"download": False}  # tiny downloads when its root is missing; these edits read a local copy
IMAGENET = {"name": "imagenet", "root": "/data/imagenet", "image_size": 64, "download": False}

UNREAD = [
    ("ground truth outside ImageNet", {"imagenet_val_ground_truth": "LOC_val_solution.csv"},
     "dataset.imagenet_val_ground_truth: 'LOC_val_solution.csv' is only read for ImageNet (dataset.name is "
     "'fashion_mnist'): remove it"),
    ("synsets outside ImageNet", {"imagenet_synsets": "synsets.txt"},
     "dataset.imagenet_synsets: 'synsets.txt' is only read for ImageNet"),
    ("synsets without ground truth", {**IMAGENET, "imagenet_synsets": "synsets.txt"},
     "dataset.imagenet_synsets: 'synsets.txt' is only read together with dataset.imagenet_val_ground_truth"),
    ("resize_short with IDX files", {**LOCAL, "format": "idx", "resize_short": 32},
     "dataset.resize_short: 32 only applies to image folders and dataset.format is 'idx'"),
    ("class_subset with torchvision", {"format": "torchvision", "download": True, "class_subset": 3},
     "dataset.class_subset: 3 only applies to image folders and dataset.format is 'torchvision'"),
    ("more classes than there are", {"class_subset": 11},
     "dataset.class_subset: 11 is more than the 10 classes of 'fashion_mnist'"),
    ("more ImageNet classes than there are", {**IMAGENET, "class_subset": 1001},
     "dataset.class_subset: 1001 is more than ImageNet's 1000 classes"),
    ("resize_short below image_size", {**LOCAL, "format": "image_folder", "resize_short": 16},
     "dataset.resize_short (16) is smaller than dataset.image_size (28)"),
    ("download with a local format", {"format": "image_folder", "download": True},
     "dataset.download: true is never read with dataset.format 'image_folder'"),
    ("download of ImageNet", {**IMAGENET, "download": True},
     "dataset.download: true: ImageNet cannot be downloaded: set download: false"),
    ("torchvision without download", {"format": "torchvision", "download": False},
     "dataset.download: false would be ignored: format torchvision always downloads"),
    ("download_dir beside a root", {"download_dir": "/scratch/data"},
     "dataset.download_dir: '/scratch/data' is only read when dataset.root is null"),
    ("IDX files of CIFAR-10", {**LOCAL, "name": "cifar10", "format": "idx", "image_size": 32},
     "dataset.format: 'idx' does not hold cifar10"),
    ("pickles of Fashion-MNIST", {**LOCAL, "format": "pickle"}, "dataset.format: 'pickle' does not hold fashion_mnist"),
    ("ImageNet from torchvision", {**IMAGENET, "format": "torchvision", "download": True},
     "dataset.format: 'torchvision' does not hold imagenet"),
]


@pytest.mark.parametrize("what, edit, message", UNREAD, ids=[u[0] for u in UNREAD])
def test_dataset_option_left_unread_is_refused(what, edit, message):
    cfg = tiny()
    cfg["dataset"].update(edit)
    assert message in refused(cfg)


@pytest.mark.parametrize("edit", [
    {**IMAGENET, "imagenet_val_ground_truth": "ILSVRC2012_validation_ground_truth.txt",
     "imagenet_synsets": "synsets.txt", "resize_short": 73, "input_size": 56, "class_subset": 10},
    {**LOCAL, "name": "cifar10", "root": "data/cifar10-jpeg", "image_size": 32, "resize_short": 36,
     "class_subset": 5},  # format auto: an image folder, decided when root is read
    {"format": "torchvision", "download": True},
    {"root": None, "download": True, "download_dir": "/scratch/data"},
    {**LOCAL, "format": "idx", "download_dir": "data"},  # the default spelt out
], ids=["imagenet folders", "auto folder", "torchvision", "download_dir without root", "defaults spelt out"])
def test_dataset_options_that_are_read_are_accepted(edit):
    cfg = tiny()
    cfg["dataset"].update(edit)
    config.validated(cfg)


# ---------------------------------------------------------------- (b) options nothing reads

OTHER_UNREAD = [
    ("board_user without a host", put("hardware.board_user", "xilinx"),
     "hardware.board_user: 'xilinx' is only used to reach a board, and hardware.board_hosts names no host"),
    ("board_batch_size without a host", put("hardware.board_batch_size", 10),
     "hardware.board_batch_size: 10 is only used to time a board"),
    ("board_user with only null hosts",
     lambda c: c["hardware"].update(board_user="xilinx", board_hosts={"ZCU104": None}),
     "hardware.board_user: 'xilinx' is only used to reach a board"),
    ("momentum with adamw", put("twin.training.momentum", 0.95),
     "twin.training.momentum: 0.95 is SGD's (Nesterov) and optimizer is adamw"),
    ("distillation of the original", put("original.training.distill_alpha", 0.5),
     "original.training.distill_alpha: 0.5: the original has no teacher"),
    ("temperature without distillation", lambda c: c["twin"]["training"].update(distill_alpha=0, distill_temperature=2),
     "twin.training.distill_temperature: 2 is only read with distill_alpha > 0"),
    ("qat_lr without QAT", put("hardware.original_quant.qat_lr", 0.01),
     "hardware.original_quant.qat_lr: 0.01 is only read with qat_epochs > 0"),
    ("GPUs for CPU jobs", lambda c: c["compute"].update(device="cpu", gpus=2), "compute.gpus: 2 GPUs asked"),
    ("ternary and weight_bits", put("twins.t2a2.weight_bits", 2),
     "twins.t2a2: give either ternary: true or weight_bits"),
    ("neither ternary nor weight_bits", put("twins.x", {"act_bits": 2}),
     "twins.x.weight_bits: missing: give weight_bits"),
]




def test_options_that_are_read_are_accepted():
    cfg = tiny()
    cfg["hardware"].update(vivado=True, board_hosts={"ZCU104": "192.168.2.99"}, board_user="xilinx",
                           board_batch_size=10)
    cfg["hardware"]["original_quant"].update(qat_epochs=1, qat_lr=0.01)
    cfg["original"]["training"].update(momentum=0.95)
    cfg["twin"]["training"].update(distill_temperature=2)
    cfg["compute"].update(device="cuda", gpus=2)
    config.validated(cfg)


def test_hardware_disabled_is_type_checked_only():
    cfg = tiny()
    cfg["hardware"].update(enabled=False, twins=["not_a_twin"], design_point={"gate": "entropy"})
    config.validated(cfg)
    cfg = tiny()
    cfg["hardware"].update(enabled=False, boards=[])
    assert "hardware.boards is empty" in refused(cfg)


# ---------------------------------------------------------------- (b) names that must be configured

REFERENCES = [
    ("FPGA twin not in twins", put("hardware.twins", ["w1a1", "w2a2"]),
     "hardware.twins names ['w2a2'], which are not in twins"),
    ("design gate not evaluated", put("hardware.design_point.gate", "entropy"),
     "hardware.design_point.gate 'entropy' is not one of cascade.gates"),
    ("design gate not registered", put("hardware.design_point.gate", "logit_magic"),
     "hardware.design_point.gate: 'logit_magic' is not one of"),
    ("design target not a target", put("hardware.design_point.target_value", 0.93),
     "hardware.design_point.target_value 0.93 is not one of cascade.target_recovery [0.5, 0.8, 0.9, 0.94]"),
    ("design target out of range", put("hardware.design_point.target_value", 1.5),
     "hardware.design_point.target_value: 1.5 is greater than the maximum of 1"),
    ("host for a board not built", lambda c: c["hardware"].update(vivado=True, board_hosts={"U250": "10.0.0.2"}),
     "hardware.board_hosts names ['U250'], which are not in hardware.boards ['ZCU104']"),
    ("host for no board at all", put("hardware.board_hosts", {"ZCU105": None}),
     "hardware.board_hosts: 'ZCU105' is not a board of hardware/boards/"),
    ("board that has no file", put("hardware.boards", ["ZCU105"]),
     "hardware.boards[0]: 'ZCU105' is not a board of hardware/boards/"),
    ("gate not registered", put("cascade.gates", ["max_softmax", "logit_magic"]),
     "cascade.gates[1]: 'logit_magic' is not one of"),
]


@pytest.mark.parametrize("what, edit, message", OTHER_UNREAD + REFERENCES,
                         ids=[u[0] for u in OTHER_UNREAD + REFERENCES])
def test_option_nothing_reads_or_name_not_configured_is_refused(what, edit, message):
    cfg = tiny()
    edit(cfg)
    assert message in refused(cfg)


def test_the_timed_and_reported_gate_is_the_first_evaluated():
    """The throughput rule and the report take cascade.gates[0]: a registered gate by the schema."""
    cfg = config.validated(tiny())
    gate = cfg["cascade"]["gates"][0]
    assert config.throughput_stage(cfg).gate == gate == config.report_stage(cfg).gate


def test_all_problems_are_reported_at_once():
    cfg = tiny()
    cfg["cascade"]["gates"] = []
    cfg["hardware"]["boards"] = ["ZCU104", "ZCU104"]
    cfg["dataset"]["bogus"] = 1
    message = refused(cfg)
    for part in ("cascade.gates is empty", "hardware.boards lists ['ZCU104'] more than once",
                 "dataset: Additional properties are not allowed ('bogus' was unexpected)"):
        assert part in message, message
