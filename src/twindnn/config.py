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

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any, ClassVar


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
    from .cascade import gate_names as names  # the registry of gates

    return list(names())


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

    The workflow calls this before any job runs (``workflow/rules/common.smk``); tests and
    notebooks call it to get the config a workflow would see.
    """
    import os
    import tempfile

    import yaml
    from snakemake.utils import validate

    schema = schema_with_gates(yaml.safe_load(Path(schema_path).read_text()))
    with tempfile.NamedTemporaryFile("w", suffix=".schema.yaml", delete=False) as f:
        yaml.safe_dump(schema, f)
    try:
        validate(config, schema=f.name)
    finally:
        os.unlink(f.name)
    check(config)
    return config


def check(config: dict) -> None:
    """Checks across keys, after schema validation; each error names the key and the fix."""
    problems = []
    run_name = config["run_name"]
    results = Path(config.get("results_dir", "results"))
    if run_name in (".", "..") or (results / run_name).resolve().parent != results.resolve():
        problems.append(f"run_name {run_name!r} escapes {results}/: use a plain name such as 'cifar10_try2'")
    ds = config["dataset"]
    if ds.get("input_size") and ds["input_size"] > ds["image_size"]:
        problems.append(f"dataset.input_size ({ds['input_size']}) is larger than dataset.image_size "
                        f"({ds['image_size']}): the network input is cropped from the cached image; "
                        "lower input_size or raise image_size")
    for name, twin in config["twins"].items():
        if twin.get("ternary") and "weight_bits" in twin:
            problems.append(f"twins.{name}: give either ternary: true or weight_bits, not both "
                            "(ternary weights are 2-bit {-1, 0, +1})")
    gates = config["cascade"]["gates"]
    duplicates = sorted({g for g in gates if gates.count(g) > 1})
    if duplicates:
        problems.append(f"cascade.gates lists {duplicates} more than once: list each gate once")
    hw = config.get("hardware") or {}
    if hw.get("enabled"):
        missing = [t for t in hw.get("twins") or [] if t not in config["twins"]]
        if missing:
            problems.append(f"hardware.twins names {missing}, which are not in twins "
                            f"({sorted(config['twins'])}): add them to twins or remove them")
        if not hw.get("boards"):
            problems.append("hardware.boards is empty: name at least one board of hardware/boards/, "
                            "or set hardware.enabled: false")
        dp_gate = hw.get("design_point", {}).get("gate")
        if dp_gate not in gates:
            problems.append(f"hardware.design_point.gate {dp_gate!r} is not one of cascade.gates {gates}: "
                            "add it to cascade.gates or choose one of them")
        hosts = {b: h for b, h in (hw.get("board_hosts") or {}).items() if h}
        if hosts and not hw.get("vivado"):
            problems.append(f"hardware.board_hosts names {sorted(hosts)} but hardware.vivado is false: timing "
                            "on a board needs a bitstream; set vivado: true or remove board_hosts")
        unknown = sorted(set(hosts) - set(hw.get("boards") or []))
        if unknown:
            problems.append(f"hardware.board_hosts names {unknown}, which are not in hardware.boards")
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
    gates: list
    targets: list


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
    clock_mhz: float | None
    utilization: float
    fps_start: float
    fps_factor: float
    mvau_wwidth_max: int
    refine_steps: int
    mac: str


@dataclass(frozen=True)
class ColocateStage(Stage):
    board: str
    utilization: float
    max_replicas: int
    switch_ms: float
    switch_batch: int
    scheduler: str  # the scheduler the built design point is sized for
    design_gate: str
    design_target: float


@dataclass(frozen=True)
class BuildStage(Stage):
    board: str
    clock_mhz: float | None
    vivado: bool
    twin_mac: str
    original_mac: str


@dataclass(frozen=True)
class BoardTimingStage(Stage):
    host: str | None
    user: str | None
    batch_size: int


@dataclass(frozen=True)
class ReportStage(Stage):
    """report_tables / compare_anchors: the run's name, its twins, the gate its single-gate figures
    show, and the whole config for provenance."""

    run_name: str
    twins: dict
    gate: str
    config: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TablesStage(Stage):
    """hw_tables: the gate and scheduler the FPGA figure shows, and the budget share called fitting."""

    gate: str
    scheduler: str
    utilization: float


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
    return CascadeStage(gates=list(c["gates"]), targets=[float(t) for t in c["target_recovery"]])


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
    return SearchStage(board=board, network=network, clock_mhz=hw["clock_mhz"], utilization=hw["utilization"],
                       fps_start=hw["fps_start"], fps_factor=hw["fps_factor"], mvau_wwidth_max=hw["mvau_wwidth_max"],
                       refine_steps=hw["refine_steps"],
                       mac=hw["original_mac"] if network == "original_q" else hw["twin_mac"])


def colocate_stage(config: dict, board: str) -> ColocateStage:
    hw = config["hardware"]
    return ColocateStage(board=board, utilization=hw["utilization"], max_replicas=hw["max_replicas"],
                         switch_ms=hw["time_shared"]["switch_ms"], switch_batch=hw["time_shared"]["batch"],
                         scheduler=hw["scheduler"],
                         design_gate=hw["design_point"]["gate"],
                         design_target=float(hw["design_point"]["target_value"]))


def build_stage(config: dict, board: str) -> BuildStage:
    hw = config["hardware"]
    return BuildStage(board=board, clock_mhz=hw["clock_mhz"], vivado=bool(hw["vivado"]), twin_mac=hw["twin_mac"], original_mac=hw["original_mac"])


def board_timing_stage(config: dict, board: str) -> BoardTimingStage:
    hw = config["hardware"]
    return BoardTimingStage(host=(hw["board_hosts"] or {}).get(board), user=hw["board_user"],
                            batch_size=hw["board_batch_size"])


def report_stage(config: dict) -> ReportStage:
    # Where the outputs go is not part of what made them.
    recorded = {k: v for k, v in config.items() if k != "results_dir"}
    return ReportStage(run_name=config["run_name"], twins=canonical(config["twins"]), gate=config["cascade"]["gates"][0],
                       config=canonical(recorded))


def tables_stage(config: dict) -> TablesStage:
    hw = config["hardware"]
    return TablesStage(gate=hw["design_point"]["gate"], scheduler=hw["scheduler"], utilization=hw["utilization"])
