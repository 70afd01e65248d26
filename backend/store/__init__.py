"""The run store: what the API and the workers share, and nothing of HTTP.

Settings, the database (engine, sessions, models, migrations), the run lifecycle, wake-ups,
reading series, the stale-run sweep, credential hashing, launching a run and sending it to the
broker by task name. It imports `pcm_engine` and its own modules only; `backend.api` and
`worker` build on it, and `tests/test_layers.py` keeps it so. Its functions raise the domain
errors of `backend.store.errors`, which the API maps to HTTP answers.
"""
