"""What produced a result: code version, packages, machine. Recorded with every run."""

from __future__ import annotations

import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

PACKAGES = ("w2s", "torch", "transformers", "accelerate", "datasets", "peft", "sqlite-utils")


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state(path: Path) -> dict:
    """Commit and dirty flag of the git checkout holding `path` (None outside a checkout)."""
    sha = _git(["rev-parse", "HEAD"], path)
    if sha is None:
        return {"git_sha": None, "git_dirty": None}
    return {"git_sha": sha, "git_dirty": bool(_git(["status", "--porcelain", "--untracked-files=no"], path))}


def package_versions() -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def provenance() -> dict:
    return {
        "code": git_state(Path(__file__).resolve().parent),
        "cwd": git_state(Path.cwd()),
        "packages": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "host": platform.node(),
    }
