"""PCM Lab's entry point, above every other layer: the `pcm` command (pcm_lab/cli.py) runs the
engine's commands and starts the API and the workers. Nothing below imports it."""
