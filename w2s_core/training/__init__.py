"""One job's training process, the only code that imports torch: `python -m w2s_core.training JOB_DIR`.

It reads the job folder the manager wrote (`w2s_core.jobdir`), trains, and writes its events,
predictions and result back there; it never touches the database.
"""
