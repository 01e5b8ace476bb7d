"""The GPU tables (schema m005): what the supervisor samples through NVML, per GPU and per running job.

    gpu_samples      one row per GPU per sampling pass: utilisation, memory used/total, temperature, power
    gpu_job_samples  one row per (running job, GPU it holds memory on) per pass: its memory, that GPU's util
    gpu_job_stats    per job, running aggregates of its latest attempt: peak memory, mean utilisation

Bounded: samples older than `GPU_KEEP_S` (6 h) are deleted as each new pass is written (at one pass every
5 s that is 4,320 rows per GPU: about 9 MB for an 8-GPU box running 8 jobs, measured; a whole day would be
35 MB for figures nothing reads after the fact). The per-job aggregates are never pruned, so
History keeps every job's peak memory and mean utilisation however long ago it ran. They are kept on
write rather than computed from the samples because the samples of an old job are gone, and because a
page of History then reads one indexed row per job. `since` is the job's started_at: a job that is run
again starts its aggregates afresh, as its other outputs do.

A job's memory is the sum over the GPUs it holds memory on (a 2-GPU job's peak is that of both
together); its utilisation at a sample is the mean of those GPUs' utilisation (NVML's device figure:
the share of time a kernel ran, not of the GPU's compute), and its mean is over samples.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TypedDict

from w2s_core.store.connection import StoreBase, sqlite_errors

GPU_KEEP_S = 6 * 3600.0


class GpuSampleRow(TypedDict):
    """One GPU at one sample (`gpu` is NVML's physical index; a figure it cannot report is None)."""

    gpu: int
    name: str | None
    util_pct: float | None
    mem_used_mb: float
    mem_total_mb: float
    temp_c: float | None
    power_w: float | None


class JobGpuRow(TypedDict):
    """The memory one running job's processes hold on one GPU at one sample, and that GPU's util."""

    job_hash: str
    gpu: int
    mem_mb: float
    util_pct: float | None


class GpuHolder(TypedDict):
    """A job holding memory on a GPU at the latest sample, with what a panel shows of it."""

    job_hash: str
    gpu: int
    mem_mb: float
    model: str | None
    kind: str | None


class GpuSnapshot(TypedDict):
    """The latest sampling pass: its time, every GPU, and the jobs holding memory on them."""

    t: float
    gpus: list[GpuSampleRow]
    jobs: list[GpuHolder]


class GpuJobStats(TypedDict):
    """A job's GPU use over its latest attempt's samples (`util_mean` None when no GPU reported util)."""

    job_hash: str
    since: float
    last_t: float
    samples: int
    peak_mb: float
    util_mean: float | None


_GPU_COLUMNS = ("gpu", "name", "util_pct", "mem_used_mb", "mem_total_mb", "temp_c", "power_w")
_INSERT_GPU = f"INSERT OR REPLACE INTO gpu_samples (t, {', '.join(_GPU_COLUMNS)}) VALUES (?{', ?' * len(_GPU_COLUMNS)})"

# A sample of an attempt the aggregates do not know (`since` differs: the job was run again) starts
# them afresh; SET's right-hand sides all read the row as it was before this update.
_UPSERT_STATS = """
INSERT INTO gpu_job_stats (job_hash, since, last_t, samples, peak_mb, util_sum, util_n)
VALUES (?1, coalesce((SELECT started_at FROM jobs WHERE hash = ?1), ?2), ?2, 1, ?3, coalesce(?4, 0), ?4 IS NOT NULL)
ON CONFLICT (job_hash) DO UPDATE SET
    samples = CASE WHEN since = excluded.since THEN samples + 1 ELSE 1 END,
    peak_mb = CASE WHEN since = excluded.since THEN max(peak_mb, excluded.peak_mb) ELSE excluded.peak_mb END,
    util_sum = CASE WHEN since = excluded.since THEN util_sum + excluded.util_sum ELSE excluded.util_sum END,
    util_n = CASE WHEN since = excluded.since THEN util_n + excluded.util_n ELSE excluded.util_n END,
    last_t = excluded.last_t,
    since = excluded.since
"""


def job_totals(jobs: Sequence[JobGpuRow]) -> dict[str, tuple[float, float | None]]:
    """{job hash: (memory on all its GPUs, mean utilisation of those reporting it)} for one sample."""
    mem: dict[str, float] = defaultdict(float)
    utils: dict[str, list[float]] = defaultdict(list)
    for row in jobs:
        mem[row["job_hash"]] += row["mem_mb"]
        if row["util_pct"] is not None:
            utils[row["job_hash"]].append(row["util_pct"])
    return {h: (mb, sum(utils[h]) / len(utils[h]) if utils[h] else None) for h, mb in mem.items()}


class Gpus(StoreBase):
    """Writing GPU samples (the supervisor) and reading the latest one and a job's aggregates (the TUI)."""

    @sqlite_errors
    def record_gpu_sample(
        self, t: float, gpus: Sequence[GpuSampleRow], jobs: Sequence[JobGpuRow], keep_s: float = GPU_KEEP_S
    ) -> None:
        """Store one sampling pass at time `t`, update the jobs' aggregates, and drop samples older than `keep_s`."""
        with self.transaction() as conn:
            conn.executemany(
                _INSERT_GPU,
                [(t, *(g[c] for c in _GPU_COLUMNS)) for g in gpus],
            )
            conn.executemany(
                "INSERT OR REPLACE INTO gpu_job_samples (job_hash, t, gpu, mem_mb, util_pct) VALUES (?, ?, ?, ?, ?)",
                [(j["job_hash"], t, j["gpu"], j["mem_mb"], j["util_pct"]) for j in jobs],
            )
            conn.executemany(_UPSERT_STATS, [(h, t, mb, util) for h, (mb, util) in job_totals(jobs).items()])
            conn.execute("DELETE FROM gpu_samples WHERE t < ?", (t - keep_s,))
            conn.execute("DELETE FROM gpu_job_samples WHERE t < ?", (t - keep_s,))

    @sqlite_errors
    def latest_gpus(self) -> GpuSnapshot | None:
        """The latest sampling pass, or None when none was ever stored (no GPU, or never sampled)."""
        t = self.db.execute("SELECT max(t) FROM gpu_samples").fetchone()[0]
        if t is None:
            return None
        gpus = [
            dict(r)
            for r in self.db.query(f"SELECT {', '.join(_GPU_COLUMNS)} FROM gpu_samples WHERE t = ? ORDER BY gpu", [t])
        ]
        jobs = [
            dict(r)
            for r in self.db.query(
                "SELECT s.job_hash, s.gpu, s.mem_mb, j.model, j.kind FROM gpu_job_samples s "
                "LEFT JOIN jobs j ON j.hash = s.job_hash WHERE s.t = ? ORDER BY s.gpu, s.mem_mb DESC",
                [t],
            )
        ]
        return {"t": t, "gpus": gpus, "jobs": jobs}  # type: ignore[typeddict-item]

    @sqlite_errors
    def gpu_job_stats(self, job_hash: str) -> GpuJobStats | None:
        """A job's peak memory and mean utilisation over its latest attempt, or None if never sampled."""
        rows = list(
            self.db.query(
                "SELECT job_hash, since, last_t, samples, peak_mb, "
                "CASE WHEN util_n > 0 THEN util_sum / util_n END AS util_mean "
                "FROM gpu_job_stats WHERE job_hash = ?",
                [job_hash],
            )
        )
        return rows[0] if rows else None  # type: ignore[return-value]
