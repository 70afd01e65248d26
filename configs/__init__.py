"""The run presets (*.yaml), installed as the package `pcm_engine.presets` (see pyproject.toml's
package-dir): `pcm_engine.config.PRESETS_DIR` finds them with importlib.resources."""
