"""LIBERO setup without the simulator: config validation, the action mapping, config.yaml writing,
and the errors that name the install steps. These run whether or not the extra is installed."""

import importlib.util

import numpy as np
import pytest
import yaml

from pcm_engine.config import ConfigError, LiberoConfig, RunConfig
from pcm_engine.envs import libero_setup
from pcm_engine.envs.libero_setup import LiberoSetupError, find_assets, write_libero_config
from pcm_engine.envs.libero_sim import to_libero_actions


def test_env_section_picks_the_variant_by_name_and_defaults_to_tabletop():
    assert RunConfig.from_dict({}, {"env.image_size": 32}).env.name == "tabletop"
    config = RunConfig.from_dict({}, {"env.name": "libero", "env.suite": "libero_goal", "env.tasks": [3]})
    assert isinstance(config.env, LiberoConfig) and config.env.suite == "libero_goal"
    assert RunConfig.from_dict(config.to_dict()) == config  # round-trips through its own dump


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"env.tasks": [10]}, "env.tasks"),
        ({"env.suite": "libero_90"}, "env.suite"),
        ({"env.layout_jitter": 0.1}, "env.layout_jitter"),  # a tabletop field
        ({"env.eval_init_states": 51}, "env.eval_init_states"),
        ({"policy.init": "sft"}, "(config)"),  # no scripted expert on LIBERO
    ],
)
def test_invalid_libero_configs_name_the_field(overrides, field):
    with pytest.raises(ConfigError) as err:
        RunConfig.from_dict({}, {"env.name": "libero", **overrides})
    assert field in err.value.fields


def test_gripper_above_zero_closes_and_everything_else_opens():
    ours = np.array([[0.5, -2.0, 0.1, 0, 0, 0, 0.3], [0, 0, 0, 0, 0, 0, 0.0], [0, 0, 0, 0, 0, 0, -0.7]])
    libero = to_libero_actions(ours)
    np.testing.assert_array_equal(libero[:, 6], [1.0, -1.0, -1.0])  # LIBERO: +1 close, -1 open
    np.testing.assert_array_equal(libero[0, :6], [0.5, -1.0, 0.1, 0, 0, 0])  # arm clipped to [-1, 1]


def test_config_yaml_is_written_where_libero_reads_it(tmp_path, monkeypatch):
    monkeypatch.delenv("LIBERO_CONFIG_PATH", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = write_libero_config(tmp_path / "libero", tmp_path / "assets")
    assert path == tmp_path / "cache" / "pcm-lab" / "libero" / "config.yaml"
    import os

    assert os.environ["LIBERO_CONFIG_PATH"] == str(path.parent)
    paths = yaml.safe_load(path.read_text())
    assert paths["bddl_files"] == str(tmp_path / "libero" / "bddl_files")
    assert paths["init_states"] == str(tmp_path / "libero" / "init_files")
    assert paths["assets"] == str(tmp_path / "assets")


def test_a_users_own_libero_config_is_left_alone(tmp_path, monkeypatch):
    (tmp_path / "config.yaml").write_text("bddl_files: /mine\n")
    monkeypatch.setenv("LIBERO_CONFIG_PATH", str(tmp_path))
    write_libero_config(tmp_path / "libero", tmp_path / "assets")
    assert (tmp_path / "config.yaml").read_text() == "bddl_files: /mine\n"


def test_missing_assets_name_the_asset_step(tmp_path):
    with pytest.raises(LiberoSetupError, match="install_libero.sh"):
        find_assets(str(tmp_path / "nowhere"))


def test_missing_libero_names_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        libero_setup.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "libero" else real(name, *a),
    )
    with pytest.raises(LiberoSetupError, match=r"\[libero\]"):
        libero_setup.libero_root()
