"""What a recipe asks for, before anything runs: validation, model and loss names, the job DAG, fingerprints.

Nothing here imports torch, so reading and planning a recipe (the CLI, the TUI's plan preview,
the supervisor) costs milliseconds.
"""
