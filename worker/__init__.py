"""PCM Lab's workers: a Celery app and the `train_run` task (see docs/architecture.md)."""
