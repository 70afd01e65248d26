"""The built-in "tabletop" suite: a vectorised numpy point-gripper pick-and-place world, served by
`TabletopEnv` (`env`) from three rooms: the tasks and their seeded scenes (`tasks`), the world's
state and its step (`dynamics`: moving, grasp and release, grip force, success) and the top-down
rasteriser (`rendering`).

World (top-down): the table spans x, y in [-1, 1] (x to the right, y away from the robot, which
sits at the front edge y = -1); z in [0, 1] is height above the table. The gripper is a point with
an open/closed state. Each scene holds up to 4 blocks (squares) and up to 2 plates (discs).
"""

from pcm_engine.envs.tabletop.env import TabletopEnv

__all__ = ["TabletopEnv"]
