"""Tasks: multiple-choice and generation items, scored on a trained run (docs/tasks.md).

`format` reads task files (JSONL), `builtin` makes tasks from a corpus's validation
split, `score` scores a model on a task, `run` evaluates a run folder and records the
results in RUN/tasks.json.
"""
