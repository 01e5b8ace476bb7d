"""One job's training process, the only code that imports torch: `python -m w2s_core.training JOB_DIR`.

It reads the job folder the manager wrote (`w2s_core.jobdir`), trains, and writes its events,
predictions and result back there; it never touches the database. Reading order:

    loop.py      the job from job.json to result.json: data, labels, optimizer, the loop, outputs
    evaluate.py  predictions, eval points (test and validation figures), the kept checkpoint, the oracle
    labels.py    the soft training labels [N, C]: ground truth or the upstream job's predictions
    setup.py     what is trained: a K-way classifier or a pairwise reward model, finetuned or probed
    models.py    loading a backbone and tokenizer, pooling, the K-way/scalar head, dtypes
    precision.py weights' dtype, autocast and float16 loss scaling; non-finite loss/predictions fail the job
    world.py     what the process count changes (the step's shape, each process's shard) and must not
    losses.py    the training losses (names and parameters: the torch-free `w2s_core.spec.losses`)
    optimizers.py  `[train] optimizer`: adam, adamw, the reference's adafactor
    batching.py  which examples share an optimiser step (`group_by_length`)
    compiling.py `[train] compile`: the model's repeated blocks compiled by torch.compile
    features.py  frozen-backbone features for probes, cached on disk
    tiny.py      the built-in random-init tiny models
"""
