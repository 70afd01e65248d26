"""The dashboard's pages and static files, installed as the package `pcm_lab_frontend` (see
pyproject.toml's package-dir): `backend.pages.FRONTEND_DIR` finds them with importlib.resources."""
