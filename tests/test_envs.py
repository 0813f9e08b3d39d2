"""envs/ (for --sdm conda) pins the same versions as requirements.txt."""
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def pins(lines):
    return {line.split("==")[0].lower(): line.split("==")[1] for line in lines if "==" in line}


def test_conda_env_matches_requirements():
    req = pins(line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
               if not line.startswith("#"))
    env = yaml.safe_load((ROOT / "envs" / "twindnn.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pins(pip) == req
