"""Environments behind the VecEnv protocol."""

from pcm_engine.envs.base import ChunkStep, Observation, Split, VecEnv

__all__ = ["ChunkStep", "Observation", "Split", "VecEnv", "make_env"]


def make_env(config) -> VecEnv:
    """Build the env named by `config.name` (an EnvConfig section of RunConfig)."""
    if config.name == "tabletop":
        from pcm_engine.envs.tabletop import TabletopEnv

        return TabletopEnv(config)
    if config.name == "libero":
        from pcm_engine.envs.libero import LiberoEnv  # needs the `libero` extra; imported on use

        return LiberoEnv(config)
    raise ValueError(f"env.name: unknown environment '{config.name}'")
