"""Where a result came from: code revision, config, data, machine, library versions."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path

from .device import describe_device

LIBRARIES = ("torch", "timm", "brevitas", "numpy", "pandas")


def git_revision(repo_dir: str | Path | None = None) -> str:
    """``git rev-parse HEAD``, with ``-dirty`` if tracked files differ from it; "unknown" outside git.

    Untracked files do not count as dirty (as in ``git describe --dirty``), nor do changes under
    ``results/``: a committed run's own outputs change as it is re-run, the code does not.
    """

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=repo_dir, capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()

    try:
        revision = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", ":(top)", ":(top,exclude)results")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return revision + ("-dirty" if dirty else "")


def config_sha256(config: dict) -> str:
    """sha256 of the config as canonical JSON (sorted keys); non-JSON values via ``str``."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def file_sha256(path) -> str:
    """Fingerprint of an input file (a dataset's meta.json, an original's checkpoint)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def library_versions(names=LIBRARIES) -> dict[str, str]:
    """Installed versions of ``names``; missing ones are left out."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def collect(
    config: dict, data_meta: dict | None = None, device: str | None = None, repo_dir: str | Path | None = None,
    config_digest: str | None = None,
) -> dict:
    """Provenance of one run as a flat, JSON-serialisable dict.

    ``device`` describes the hardware the numbers come from; by default this
    machine's CPU (``twindnn.device.describe_device("cpu")``). ``config_digest`` is the sha256 of
    the config the results came from, where ``config`` is only the part of it a step reads
    (a stage's provenance fields); by default the digest of ``config``.
    """
    data_meta = data_meta or {}
    if device is None:
        device = describe_device("cpu")
    return {
        "git_revision": git_revision(repo_dir),
        "run_name": config.get("run_name", "unnamed"),
        "config_sha256": config_digest or config_sha256(config),
        "dataset": data_meta.get("dataset") or (config.get("dataset") or {}).get("name", "unknown"),
        "data_source": data_meta.get("source", "unknown"),
        "device": device,
        "hostname": socket.gethostname(),
        "python": platform.python_version(),
        "versions": library_versions(),
        "timestamp_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def provenance_footer(prov: dict) -> str:
    """One Markdown line summarising ``prov`` (from ``collect``)."""
    versions = ", ".join(f"{k} {v}" for k, v in prov.get("versions", {}).items())
    return (
        f"Provenance: run `{prov.get('run_name')}`, git `{prov.get('git_revision')}`, "
        f"config sha256 `{str(prov.get('config_sha256', ''))[:12]}`, "
        f"data {prov.get('dataset')} ({prov.get('data_source')}), "
        f"made {prov.get('timestamp_utc')} on {prov.get('hostname')} ({prov.get('device')}); "  # not the config
        f"Python {prov.get('python')}" + (f", {versions}" if versions else "") + "."
    )
