"""What a recipe asks for, before anything runs: validation, model and loss names, the job DAG, fingerprints.

    recipe.py    TOML recipes: reading, validating, the Recipe (a suite's [[task]]s are its parts)
    schema.py    every table's keys, checks and defaults; the typed ModelEntry, Method, Chain entries
    checks.py    value checks for recipe keys, and the collector that reports every problem at once
    methods.py   [[transfer]] and [[bootstrap]] tables: a loss, its parameters, its train overrides
    stages.py    [[prompt]] and [[generative]] tables: prompting jobs and generative-finetuning stages
    grid.py      hyperparameter grids: which list values sweep, their names, one recipe per grid point
    launch.py    the [launch] keys that say where jobs run (local or Slurm): time and sbatch-line parsing
    registry.py  per-model defaults (learning rate, batch sizes, context) for known model names
    losses.py    loss names, their parameters and ranges, logconf's alpha schedule (the functions are in training)
    models.py    model identity without loading: tiny-model settings, local folders, fingerprints
    shapes.py    a model's architecture figures (config.json, else the registry): parameter counts
    memory.py    the memory plan: each job's estimated peak memory per GPU and its training strategy
    plan.py      the job DAG: Job (keyed by a content hash), JobKind; the dry-run listing
    jobspec.py   the JSON shapes plan.py writes: a job's spec (JobSpec) and its roles (Role)

Nothing here imports torch, so reading and planning a recipe (the CLI, the TUI's plan preview,
the supervisor) costs milliseconds.
"""
