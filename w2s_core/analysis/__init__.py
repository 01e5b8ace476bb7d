"""Analysis: from a results database to the numbers the paper reports.

    pgr.py         the PGR table (weak, w2s, ceiling, PGR and its interval per setup), the per-method
                   summary, chain steps
    estimators.py  the two PGR estimators: ours (mean of per-seed PGR) and the paper's (median)
    pivot.py       a grid's PGR by one swept key (`w2s results --by`): the best point per value
    figures.py     a job's final, selected and oracle figures (older results too)
    stats.py       accuracy, AUROC, agreement, PGR, seed aggregation, sanity warnings (numpy only)
    table.py       the table as text for the CLI, and the labels the TUI shares
    latex.py       the table as a booktabs LaTeX table (`w2s results --latex`)
    plots.py       the paper's figures as PNG/SVG/PDF files (`w2s plot`; plots_data/specs/draw.py)
    export.py      results, jobs, metrics, predictions and runs as Parquet (`w2s export --parquet`)
    wandb_mirror.py  every job as a W&B run (`w2s export --wandb`)

This package imports none of them: callers import the module they use (`w2s_core.analysis.pgr`),
so `w2s_core.analysis.stats`, which a training job imports, does not pull the store and SQLite in.
"""
