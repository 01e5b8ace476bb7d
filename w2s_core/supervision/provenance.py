"""What produced a result: code version, packages, machine. Recorded with every run."""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

MAX_DIFF_CHARS = 200_000
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # w2s_core/
PACKAGES = ("w2s", "torch", "transformers", "accelerate", "datasets", "peft", "sqlite-utils")


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state(path: Path, diff: bool = False) -> dict:
    """Commit and dirty flag of the git checkout holding `path` (None outside a checkout), and
    with `diff` the uncommitted changes themselves (what a dirty flag alone cannot reproduce)."""
    sha = _git(["rev-parse", "HEAD"], path)
    if sha is None:
        return {"git_sha": None, "git_dirty": None, **({"git_diff": None} if diff else {})}
    dirty = bool(_git(["status", "--porcelain", "--untracked-files=no"], path))
    if not diff:
        return {"git_sha": sha, "git_dirty": dirty}
    text = _git(["diff", "HEAD"], path) if dirty else None
    if text and len(text) > MAX_DIFF_CHARS:
        text = text[:MAX_DIFF_CHARS] + f"\n... (diff cut at {MAX_DIFF_CHARS} characters)"
    return {"git_sha": sha, "git_dirty": dirty, "git_diff": text}


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
        "code": git_state(PACKAGE_DIR, diff=True),
        "cwd": git_state(Path.cwd()),
        "packages": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "host": platform.node(),
    }


def _code_files() -> list[Path]:
    return sorted(p for p in PACKAGE_DIR.rglob("*.py") if "__pycache__" not in p.parts)


def code_version() -> str:
    """A hash of the w2s_core sources, so a snapshot is taken once per version of the code."""
    digest = hashlib.sha256()
    for path in _code_files():
        digest.update(path.relative_to(PACKAGE_DIR).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def snapshot_code(root: Path) -> str:
    """Copy w2s_core into ROOT/code/<version>/ (once per version): queued jobs run this copy, so
    editing the checkout after submitting does not change queued work. Returns the folder relative
    to ROOT, so a moved results directory still finds it."""
    version = code_version()
    dest = Path(root) / "code" / version
    if not (dest / "w2s_core").is_dir():
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=".tmp-"))
        for path in _code_files():
            target = tmp / "w2s_core" / path.relative_to(PACKAGE_DIR)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        try:
            os.rename(tmp, dest)
        except OSError:  # another submitter made the same snapshot first
            shutil.rmtree(tmp, ignore_errors=True)
    return f"code/{version}"
