"""The config boundary: cross-field checks, and one small config object per workflow stage.

Snakemake validates the config against ``workflow/schemas/config.schema.yaml``, which is the
only home of defaults (``validate`` fills them in). Then :func:`check` runs the checks a JSON
schema cannot express, and each rule gets exactly its stage's object, as plain canonical data
(``Stage.to_params()``: sorted keys, builtin types), as its ``params``. Plain data matters:
Snakemake's params trigger ignores objects it cannot ``repr`` faithfully, and compares dicts in
insertion order, so a config with its keys in another order would otherwise re-run the DAG.
The rule script rebuilds the typed object with ``Stage.from_params``.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any, ClassVar

import yaml
from jsonschema import Draft202012Validator
from snakemake.utils import validate

from .cascade import gate_names as registered_gates


class ConfigError(ValueError):
    """A config that is valid for the schema but inconsistent; the message names the key."""


def canonical(value: Any) -> Any:
    """``value`` as plain JSON-like data with every mapping's keys sorted (tuples become lists)."""
    if isinstance(value, Mapping):
        return {str(k): canonical(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, PurePath):
        return str(value)
    return value


def digest(value: Any) -> str:
    """sha256 of ``value`` as canonical JSON."""
    return hashlib.sha256(json.dumps(canonical(value), sort_keys=True, default=str).encode()).hexdigest()


# --------------------------------------------------------------------------- cross-field checks


def gate_names() -> list[str]:
    """The gates of the registry in :mod:`twindnn.cascade`."""
    return list(registered_gates())


def schema_with_gates(schema: dict) -> dict:
    """The schema with the gate enums read from the registry in :mod:`twindnn.cascade`."""
    names = gate_names()
    props = schema["properties"]
    props["cascade"]["properties"]["gates"]["items"]["enum"] = names
    props["hardware"]["properties"]["design_point"]["properties"]["gate"]["enum"] = names
    return schema


SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


def validated(config: dict, schema_path: str | Path = SCHEMA) -> dict:
    """Validate ``config`` in place with Snakemake's own ``validate`` (which fills in the schema's
    defaults), the gate enums read from the registry, then :func:`check`. Returns ``config``.

    Before Snakemake's ``validate``: a section given as null whose schema type admits null is
    replaced by its default (that is what null means there), and the config is checked against the
    schema without defaults, every error named as ``<key>: <what is wrong>: <the fix>``
    (:func:`schema_problems`). This also keeps Snakemake's default-filling from crashing on a
    section that is null or not a mapping.

    The workflow calls this before any job runs (``workflow/rules/common.smk``); tests and
    notebooks call it to get the config a workflow would see.
    """
    schema = schema_with_gates(yaml.safe_load(Path(schema_path).read_text()))
    if not isinstance(config, dict):
        raise ConfigError(f"invalid config: the config is {_show(config)}, not a mapping of sections: "
                          "start from config/config.yaml")
    null_means_default(config, schema)
    problems = schema_problems(config, schema)
    if problems:
        raise ConfigError("invalid config:\n  - " + "\n  - ".join(problems))
    with tempfile.NamedTemporaryFile("w", suffix=".schema.yaml", delete=False) as f:
        yaml.safe_dump(schema, f)
    try:
        validate(config, schema=f.name)
    finally:
        os.unlink(f.name)
    check(config)
    return config


def _resolve(node: Any, schema: dict) -> Any:
    """``node`` with a local ``$ref`` (``#/...``) replaced by what it points to, merged
    under the node's own keywords."""
    if isinstance(node, dict) and isinstance(node.get("$ref"), str) and node["$ref"].startswith("#/"):
        target: Any = schema
        for part in node["$ref"][2:].split("/"):
            target = target[part]
        return {**_resolve(target, schema), **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _types(node: Any) -> set:
    t = node.get("type") if isinstance(node, dict) else None
    return set(t) if isinstance(t, list) else {t} if t else set()


def null_means_default(config: Any, schema: dict, node: Any = None) -> None:
    """In place: each key of ``config`` that is null where the schema's type for it is null or an
    object (an optional section whose null the schema documents as its default) becomes a copy of
    that default. A section whose type does not admit null is left for :func:`schema_problems`."""
    node = _resolve(schema if node is None else node, schema)
    if not isinstance(config, dict) or not isinstance(node, dict):
        return
    props = node.get("properties") or {}
    extra = node.get("additionalProperties")
    for key in list(config):
        sub = _resolve(props.get(key, extra if isinstance(extra, dict) else None), schema)
        if not isinstance(sub, dict):
            continue
        if config[key] is None and {"null", "object"} <= _types(sub) and "default" in sub:
            config[key] = copy.deepcopy(sub["default"])
        null_means_default(config[key], schema, sub)


def _show(value: Any) -> str:
    """A config value as YAML spells it: null, true/false, quoted strings."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def _key(path) -> str:
    key = ""
    for part in path:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key or "config"


def _lookup(config: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        config = config.get(part) if isinstance(config, dict) else None
    return config


def _fix(error, config: dict) -> str | None:
    """The schema's ``errorMessage`` for ``error`` (one text, or one per keyword), with ``{value}``
    and ``{<dotted.key>}`` filled in from the config."""
    message = error.schema.get("errorMessage") if isinstance(error.schema, dict) else None
    if isinstance(message, dict):
        message = message.get(error.validator)
    if not isinstance(message, str):
        return None
    return re.sub(r"\{([A-Za-z_][A-Za-z0-9_.]*)\}",
                  lambda m: _show(error.instance if m[1] == "value" else _lookup(config, m[1])), message)


def _describe(error, config: dict) -> str:
    """One schema error as ``<key>: <what is wrong>: <the fix>``."""
    key, fix = _key(error.absolute_path), _fix(error, config)
    schema = error.schema if isinstance(error.schema, dict) else {}
    kind, value = error.validator, error.instance
    if kind == "required":
        missing = [k for k in error.validator_value if k not in value]
        child = ".".join(filter(None, [key if error.absolute_path else "", missing[0] if missing else ""]))
        return f"{child}: missing: {fix or 'add it (see its description in workflow/schemas/config.schema.yaml)'}"
    if kind == "additionalProperties" and error.validator_value is False:
        return (f"{key}: {error.message}: check the spelling against config/README.md "
                f"(accepted: {', '.join(sorted(schema.get('properties') or {}))})")
    if kind == "type" and value is None:
        if fix is None and "object" in _types(schema):
            required = schema.get("required") or []
            fix = (f"give its keys ({', '.join(required)}; see config/tiny.yaml)" if required else
                   f"write {str(error.absolute_path[-1]) if error.absolute_path else key}: {{}} to take every "
                   "default, or give its keys")
        elif fix is None:
            fix = "give a value" + (f", or leave the key out for its default {_show(schema['default'])}"
                                    if "default" in schema else "")
        return f"{key}: is empty (null): {fix}"
    if kind == "minItems" and not value:
        return f"{key} is empty: {fix or 'give at least one entry'}"
    if kind == "uniqueItems":
        repeated = []
        for i, item in enumerate(value):
            if item in value[:i] and item not in repeated:
                repeated.append(item)
        return f"{key} lists {repeated} more than once: {fix or 'list each entry once'}"
    if fix and kind in ("const", "enum", "not", "maximum", "minimum", "minProperties", "pattern") \
            or fix and kind == "type" and "null" in _types(schema):
        return f"{key}: {fix}"
    return f"{key}: {error.message}" + (f": {fix}" if fix else "")


def schema_problems(config: dict, schema: dict) -> list[str]:
    """Every way ``config`` (before defaults) breaks ``schema``, each as ``<key>: <what>: <fix>``."""
    errors = sorted(Draft202012Validator(schema).iter_errors(config),
                    key=lambda e: ([str(p) for p in e.absolute_path], e.validator))
    # A value of the wrong type (a null section) explains everything else said about it or inside it.
    wrong = [list(e.absolute_path) for e in errors if e.validator == "type"]
    errors = [e for e in errors if e.validator == "type"
              or not any(list(e.absolute_path)[:len(w)] == w for w in wrong)]
    return list(dict.fromkeys(_describe(e, config) for e in errors))


def check(config: dict) -> None:
    """Checks across keys, after schema validation (and its defaults); each error names the key and
    the fix. What a JSON schema can say (types, ranges, empty or repeated entries, options the
    dataset or the boards leave unread) lives in the schema; here are the comparisons of one key's
    value with another's: a name that must be configured elsewhere, and sizes that must be ordered.
    """
    problems = []
    run_name = config["run_name"]
    results = Path(config["results_dir"])
    if run_name in (".", "..") or (results / run_name).resolve().parent != results.resolve():
        problems.append(f"run_name {run_name!r} escapes {results}/: use a plain name such as 'cifar10_try2'")
    ds = config["dataset"]
    if ds["input_size"] and ds["input_size"] > ds["image_size"]:
        problems.append(f"dataset.input_size ({ds['input_size']}) is larger than dataset.image_size "
                        f"({ds['image_size']}): the network input is cropped from the cached image; "
                        "lower input_size or raise image_size")
    if ds["resize_short"] and ds["resize_short"] < ds["image_size"]:
        problems.append(f"dataset.resize_short ({ds['resize_short']}) is smaller than dataset.image_size "
                        f"({ds['image_size']}): the short side is never resized below image_size, so it would "
                        "be ignored; raise resize_short to at least image_size, or set it to null")
    cascade = config["cascade"]
    gates, targets = cascade["gates"], cascade["target_recovery"]
    hw = config["hardware"]
    if hw["enabled"]:
        missing = [t for t in hw["twins"] or [] if t not in config["twins"]]
        if missing:
            problems.append(f"hardware.twins names {missing}, which are not in twins "
                            f"({sorted(config['twins'])}): add them to twins or remove them")
        dp = hw["design_point"]
        dp_gate = dp["gate"]
        if dp_gate not in gates:
            problems.append(f"hardware.design_point.gate {dp_gate!r} is not one of cascade.gates {gates}: "
                            "add it to cascade.gates or choose one of them")
        dp_target = dp["target_value"]
        if not any(math.isclose(dp_target, t, rel_tol=1e-9) for t in targets):
            problems.append(f"hardware.design_point.target_value {dp_target!r} is not one of "
                            f"cascade.target_recovery {targets}: choose one of them, or add it there")
        hosts = {b: h for b, h in hw["board_hosts"].items() if h}
        if hosts and not hw["vivado"]:
            problems.append(f"hardware.board_hosts names {sorted(hosts)} but hardware.vivado is false: timing "
                            "on a board needs a bitstream; set vivado: true or remove board_hosts")
        unknown = sorted(set(hw["board_hosts"]) - set(hw["boards"]))
        if unknown:
            problems.append(f"hardware.board_hosts names {unknown}, which are not in hardware.boards "
                            f"{hw['boards']}: add them to boards or remove them from board_hosts")
    if problems:
        raise ConfigError("invalid config:\n  - " + "\n  - ".join(problems))


# --------------------------------------------------------------------------- stage objects


@dataclass(frozen=True)
class Stage:
    """Base of the per-stage config objects: plain data in, plain data out."""

    rule: ClassVar[str] = ""

    def to_params(self) -> dict:
        return canonical(dataclasses.asdict(self))

    @classmethod
    def from_params(cls, params: Mapping):
        return cls(**dict(params))

    def fingerprint(self, **inputs: str) -> str:
        """What made a result: this stage's config and the fingerprints of its inputs."""
        return digest({"stage": type(self).__name__, "config": self.to_params(), "inputs": inputs})


@dataclass(frozen=True)
class DataStage(Stage):
    """prepare_data: the dataset section."""

    dataset: dict


@dataclass(frozen=True)
class TrainStage(Stage):
    """train_original / train_twin: the network, its training block and the seeded compute keys."""

    kind: str  # "original" or "twin"
    training: dict
    seed: int
    device: str
    num_workers: int
    model: dict | None = None  # original: timm name, model_kwargs, pretrained_file
    input_size: int | None = None  # original: network input side when cropping the cache
    twin_name: str | None = None
    twin: dict | None = None  # twin: its entry of `twins`

    def fit_config(self) -> dict:
        """The dict that :func:`twindnn.train.fit` reads."""
        return {**self.training, "seed": self.seed, "device": self.device, "num_workers": self.num_workers}


@dataclass(frozen=True)
class LogitsStage(Stage):
    device: str


@dataclass(frozen=True)
class CascadeStage(Stage):
    """cascade: the gates, the targets by kind (twindnn.operating_points) and the guaranteed
    rule's level; both selection rules are always applied."""

    gates: list
    targets: dict
    delta: float


@dataclass(frozen=True)
class ThroughputStage(Stage):
    batch_size: int
    forwarded_fractions: list
    warmup: int
    repeats: int
    device: str
    gate: str  # the gate the timed cascade computes


@dataclass(frozen=True)
class QuantizeStage(Stage):
    """hw_quantize_original: post-training quantization, and the QAT schedule when qat_epochs > 0."""

    weight_bits: int
    act_bits: int
    calibration_images: int
    qat_epochs: int
    qat_lr: float
    seed: int
    device: str
    num_workers: int
    training: dict | None = None  # the original's training block; only read for QAT

    def fit_config(self) -> dict:
        cfg = dict(self.training or {})
        cfg.update(epochs=self.qat_epochs, lr=self.qat_lr, optimizer="adamw", weight_decay=0.0, warmup_epochs=0.0,
                   seed=self.seed, device=self.device, num_workers=self.num_workers)
        return cfg


@dataclass(frozen=True)
class ExportStage(Stage):
    check_images: int


@dataclass(frozen=True)
class PrepareStage(Stage):
    check_images: int
    min_agreement: float


@dataclass(frozen=True)
class SearchStage(Stage):
    """hw_search: the design space of one network on one board."""

    board: str
    network: str
    role: str  # "original" or "twin": what the network is in the pair (:func:`network_role`)
    clock_mhz: float | None
    utilization: float
    fps_start: float
    fps_factor: float
    mvau_wwidth_max: int
    refine_steps: int
    macs: list  # where the network's MACs may go, each searched (:func:`network_macs`)


@dataclass(frozen=True)
class ColocateStage(Stage):
    board: str
    utilization: float
    max_replicas: int | None
    overheads: dict  # hardware.overheads: stated per-instance and dispatcher costs
    sensitivity: dict  # hardware.sensitivity: {resource: factor on the designs' estimates}
    switch_ms: float
    latency_budget_ms: float | None
    scheduler: str  # the scheduler the built design point is sized for
    design_gate: str
    design_target: float
    selection: str  # the threshold rule whose operating points go on the FPGA (cascade.selection)


@dataclass(frozen=True)
class BuildStage(Stage):
    """hw_build: one network's build in one role of a pair search (:data:`BUILD_ROLES`)."""

    board: str
    clock_mhz: float | None
    vivado: bool
    role: str


@dataclass(frozen=True)
class PairBuildStage(Stage):
    """hw_build_pair: the design point's twin and original as one design."""

    board: str
    clock_mhz: float | None
    vivado: bool


@dataclass(frozen=True)
class BoardTimingStage(Stage):
    host: str | None
    user: str | None
    batch_size: int


@dataclass(frozen=True)
class ReportStage(Stage):
    """report_tables: the run's name and dataset, its twins, the gate its single-gate figures show,
    and the digest of the config its results came from (:func:`software_config`), for provenance."""

    run_name: str
    dataset: str
    twins: dict
    gate: str
    config_sha256: str

    def provenance(self) -> dict:
        """What :func:`twindnn.provenance.collect` reads of the config."""
        return {"run_name": self.run_name, "dataset": {"name": self.dataset}}


@dataclass(frozen=True)
class AnchorsStage(ReportStage):
    """compare_anchors: the report's fields, and this run's answer to each aspect of the authors'
    design (:func:`run_design`); its digest covers the hardware section too."""

    design: dict = field(default_factory=dict)


@dataclass(frozen=True)
class AnswerStage(ReportStage):
    """answer: the design point (gate, recovery target, scheduler, threshold rule) the answer reads,
    whether the run has the FPGA half, and the reference run set beside it (None: none)."""

    target_value: float = 0.9
    scheduler: str = "work_sharing"
    selection: str = "point"
    hardware: bool = False
    reference_run: str | None = None


@dataclass(frozen=True)
class TablesStage(Stage):
    """hw_tables: the gate and scheduler the FPGA figure shows, and the budget share called fitting."""

    gate: str
    scheduler: str
    utilization: float


# --------------------------------------------------------------------------- networks of the FPGA half

ORIGINAL_NETWORK = "original_q"  # the original as the FPGA runs it (hw_quantize_original)
TWIN_PREFIX = "twin_"
# The builds of one pair search: the twin and the original in the pair, and the original alone.
BUILD_ROLES = ("twin", "original", "original_alone")


def twin_network(twin: str) -> str:
    """The FPGA network name of twin ``twin`` (its ``{network}`` wildcard)."""
    return TWIN_PREFIX + twin


def hw_twins(config: dict) -> list[str]:
    """The twins that go on the FPGA (hardware.twins, else all of twins)."""
    return list(config["hardware"]["twins"] or config["twins"])


def hw_networks(config: dict) -> list[str]:
    """Every ``{network}`` of the FPGA half: the quantized original and each FPGA twin."""
    return [ORIGINAL_NETWORK] + [twin_network(t) for t in hw_twins(config)]


def network_role(network: str) -> str:
    """"original" or "twin": what ``network`` is in a TwinDNN pair."""
    if network == ORIGINAL_NETWORK:
        return "original"
    if network.startswith(TWIN_PREFIX):
        return "twin"
    raise ConfigError(f"network {network!r}: use {ORIGINAL_NETWORK!r} or {TWIN_PREFIX}<twin>")


def network_twin(network: str) -> str:
    """The twin an FPGA twin network is (``twin_w1a1`` -> ``w1a1``)."""
    if network_role(network) != "twin":
        raise ConfigError(f"network {network!r} is not a twin")
    return network[len(TWIN_PREFIX):]


def build_network_of(role: str, twin: str) -> str:
    """The network a build of ``role`` (:data:`BUILD_ROLES`) in twin ``twin``'s pair search builds."""
    if role not in BUILD_ROLES:
        raise ConfigError(f"build role {role!r}: use one of {list(BUILD_ROLES)}")
    return twin_network(twin) if role == "twin" else ORIGINAL_NETWORK


def network_macs(config: dict, network: str) -> list[str]:
    """Where ``network``'s MACs may go, each searched: hardware.twin_macs or hardware.original_macs."""
    hw = config["hardware"]
    return list(hw["twin_macs"] if network_role(network) == "twin" else hw["original_macs"])


# --------------------------------------------------------------------------- from the validated config


def _compute(config: dict) -> dict:
    c = config["compute"]
    return {"seed": int(c["seed"]), "device": c["device"], "num_workers": int(c["num_workers"])}


def data_stage(config: dict) -> DataStage:
    return DataStage(dataset=canonical(config["dataset"]))


def train_original_stage(config: dict) -> TrainStage:
    o = config["original"]
    model = {k: o[k] for k in ("model", "model_kwargs", "pretrained_file")}
    return TrainStage(kind="original", training=canonical(o["training"]), model=canonical(model),
                      input_size=config["dataset"]["input_size"], **_compute(config))


def train_twin_stage(config: dict, twin: str) -> TrainStage:
    if twin not in config["twins"]:
        raise ConfigError(f"twin {twin!r} is not in twins ({sorted(config['twins'])})")
    return TrainStage(kind="twin", training=canonical(config["twin"]["training"]), twin_name=twin,
                      twin=canonical(config["twins"][twin]), **_compute(config))


def logits_stage(config: dict) -> LogitsStage:
    return LogitsStage(device=config["compute"]["device"])


def cascade_stage(config: dict) -> CascadeStage:
    c = config["cascade"]
    targets = {"accuracy_recovery": [float(t) for t in c["target_recovery"]],
               "max_accuracy_loss": [float(t) for t in c["max_accuracy_loss"]],
               "max_disagreement": [float(t) for t in c["max_disagreement"]]}
    return CascadeStage(gates=list(c["gates"]), targets=targets, delta=float(c["delta"]))


def throughput_stage(config: dict) -> ThroughputStage:
    t = config["throughput"]
    return ThroughputStage(batch_size=t["batch_size"], forwarded_fractions=list(t["forwarded_fractions"]),
                           warmup=t["warmup"], repeats=t["repeats"], device=t["device"],
                           gate=config["cascade"]["gates"][0])


def quantize_stage(config: dict) -> QuantizeStage:
    q = config["hardware"]["original_quant"]
    qat = int(q["qat_epochs"]) > 0
    return QuantizeStage(weight_bits=q["weight_bits"], act_bits=q["act_bits"],
                         calibration_images=q["calibration_images"], qat_epochs=q["qat_epochs"],
                         qat_lr=q["qat_lr"], training=canonical(config["original"]["training"]) if qat else None,
                         **_compute(config))


def export_stage(config: dict) -> ExportStage:
    return ExportStage(check_images=config["hardware"]["check_images"])


def prepare_stage(config: dict) -> PrepareStage:
    hw = config["hardware"]
    return PrepareStage(check_images=hw["streamline_check_images"], min_agreement=hw["streamline_min_agreement"])


def search_stage(config: dict, board: str, network: str) -> SearchStage:
    hw = config["hardware"]
    return SearchStage(board=board, network=network, role=network_role(network), clock_mhz=hw["clock_mhz"],
                       utilization=hw["utilization"], fps_start=hw["fps_start"], fps_factor=hw["fps_factor"],
                       mvau_wwidth_max=hw["mvau_wwidth_max"], refine_steps=hw["refine_steps"],
                       macs=network_macs(config, network))


def colocate_stage(config: dict, board: str) -> ColocateStage:
    hw = config["hardware"]
    return ColocateStage(board=board, utilization=hw["utilization"], max_replicas=hw["max_replicas"],
                         overheads=canonical(hw["overheads"]), sensitivity={"LUT": float(hw["sensitivity"]["lut_factor"]),
                                                                       "BRAM_18K": float(hw["sensitivity"]["bram_factor"])},
                         switch_ms=hw["time_shared"]["switch_ms"],
                         latency_budget_ms=hw["time_shared"]["latency_budget_ms"],
                         scheduler=hw["scheduler"],
                         design_gate=hw["design_point"]["gate"],
                         design_target=float(hw["design_point"]["target_value"]),
                         selection=config["cascade"]["selection"])


def build_stage(config: dict, board: str, twin: str, role: str) -> BuildStage:
    hw = config["hardware"]
    build_network_of(role, twin)  # refuses an unknown role
    return BuildStage(board=board, clock_mhz=hw["clock_mhz"], vivado=bool(hw["vivado"]), role=role)


def build_pair_stage(config: dict, board: str) -> PairBuildStage:
    hw = config["hardware"]
    return PairBuildStage(board=board, clock_mhz=hw["clock_mhz"], vivado=bool(hw["vivado"]))


def board_timing_stage(config: dict, board: str) -> BoardTimingStage:
    hw = config["hardware"]
    return BoardTimingStage(host=hw["board_hosts"].get(board), user=hw["board_user"],
                            batch_size=hw["board_batch_size"])


# Keys that only tell a scheduler what a job needs: they change no result.
SCHEDULING_KEYS = {"compute": ("mem_mb", "train_runtime_min", "data_workers")}


def software_config(config: dict) -> dict:
    """The part of ``config`` the software half's results come from: everything but where outputs
    go, the description, the FPGA half and the scheduling requests (:data:`SCHEDULING_KEYS`)."""
    out = {k: v for k, v in config.items() if k not in ("results_dir", "description", "hardware", "reference_run")}
    for section, keys in SCHEDULING_KEYS.items():
        out[section] = {k: v for k, v in out[section].items() if k not in keys}
    return canonical(out)


def run_design(config: dict) -> dict:
    """This run's answer to each aspect of the authors' design (``workflow/anchors.yaml: design``)."""
    hw = config["hardware"]
    twins = "; ".join(
        f"{name}: {'ternary' if t['ternary'] else str(t['weight_bits']) + '-bit'} weights"
        f" ({t['weight_scaling'].replace('_', ' ')} scale), {t['act_bits']}-bit activations"
        for name, t in sorted(config["twins"].items()))  # sorted: the config's key order changes no output
    design = {"gate": f"{config['cascade']['gates'][0]} (cascade.gates[0]); the others beside it",
              "twin precision": twins}
    if hw["enabled"]:
        q = hw["original_quant"]
        design.update({
            "gate": f"{hw['design_point']['gate']} (design point); all of {config['cascade']['gates']} in the tables",
            "scheduler": f"{hw['scheduler']} (design point); work_sharing and twin_first in the tables",
            "original precision": f"{q['weight_bits']}-bit weights, {q['act_bits']}-bit activations",
            "clock": f"{hw['clock_mhz']} MHz" if hw["clock_mhz"] else "each board file's clock",
            "accelerators": f"FINN+ dataflow, weights on chip; twin MACs: {', '.join(hw['twin_macs'])}, original: "
                            f"{', '.join(hw['original_macs'])} (FINN+ estimates)"})
    return design


def report_stage(config: dict) -> ReportStage:
    return ReportStage(run_name=config["run_name"], dataset=config["dataset"]["name"],
                       twins=canonical(config["twins"]), gate=config["cascade"]["gates"][0],
                       config_sha256=digest(software_config(config)))


def anchors_stage(config: dict) -> AnchorsStage:
    recorded = {**software_config(config), "hardware": config["hardware"]}
    return AnchorsStage(run_name=config["run_name"], dataset=config["dataset"]["name"],
                        twins=canonical(config["twins"]), gate=config["cascade"]["gates"][0],
                        config_sha256=digest(recorded), design=canonical(run_design(config)))


def reference_of(config: dict) -> str | None:
    """The run this one is set beside (``reference_run``), or None when unset or the run itself."""
    ref = config["reference_run"]
    return ref if ref and ref != config["run_name"] else None


def answer_stage(config: dict) -> AnswerStage:
    hw = config["hardware"]
    return AnswerStage(run_name=config["run_name"], dataset=config["dataset"]["name"],
                       twins=canonical(config["twins"]), gate=hw["design_point"]["gate"],
                       config_sha256=digest({**software_config(config), "hardware": hw}),
                       target_value=float(hw["design_point"]["target_value"]), scheduler=hw["scheduler"],
                       selection=config["cascade"]["selection"], hardware=bool(hw["enabled"]),
                       reference_run=reference_of(config))


def tables_stage(config: dict) -> TablesStage:
    hw = config["hardware"]
    return TablesStage(gate=hw["design_point"]["gate"], scheduler=hw["scheduler"], utilization=hw["utilization"])
