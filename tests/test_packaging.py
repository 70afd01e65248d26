"""The package as users install it: the wheel holds the presets, the dashboard's pages and static
files and the database migrations as package data, and a plain (non-editable) `pip install` of it
into a fresh venv runs `pcm up` and serves the dashboard with the source tree nowhere on its path.

The wheel is built from a copy of the folders that pyproject.toml maps to packages (so build
leftovers never touch the checkout), with the setuptools of this venv (`.[dev]` pins it) and no
download. The install test gives the fresh venv nothing but the wheel; the dependencies come from
this venv's site-packages, put on PYTHONPATH after the fresh venv's own (its .pth files, among them
the editable install's path hook, are not read from there).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.services import free_port, wait_for

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
PACKAGE_DIRS: dict[str, str] = PYPROJECT["tool"]["setuptools"]["package-dir"]
TOP_LEVEL = {name for name in PACKAGE_DIRS if "." not in name}
NOT_SHIPPED = {"tests"}  # top-level folders with an __init__.py that stay out of the wheel


def _data_files(folder: Path) -> list[str]:
    """Files under `folder` (relative, posix), without Python caches."""
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    )


def _wheel_path(package: str, relative: str) -> str:
    return "/".join([*package.split("."), relative])


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    pytest.importorskip("setuptools", minversion="70.1", reason="pip install -e '.[dev]' pins it")
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    for folder in {value.split("/")[0] for value in PACKAGE_DIRS.values()}:
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
        shutil.copytree(REPO / folder, src / folder, ignore=ignore)
    out = root / "dist"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", out, src],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PIP_NO_INPUT": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (path,) = out.glob("pcm_lab-*.whl")
    return path


def test_every_package_folder_is_shipped():
    """A new top-level package must get its line in [tool.setuptools.package-dir]."""
    shipped = {value.split("/")[0] for value in PACKAGE_DIRS.values()}
    folders = {p.parent.name for p in REPO.glob("*/__init__.py")} - NOT_SHIPPED
    assert folders <= shipped, f"add to pyproject's package-dir: {sorted(folders - shipped)}"


@pytest.mark.slow  # builds the wheel
def test_wheel_holds_code_presets_dashboard_and_migrations(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())

    # every module of every mapped package, at its installed name
    for package, folder in PACKAGE_DIRS.items():
        for relative in _data_files(REPO / folder):
            if relative.endswith(".py") and not any(
                (REPO / folder / relative).is_relative_to(REPO / other)
                for other in PACKAGE_DIRS.values()
                if other != folder and other.startswith(folder + "/")
            ):
                assert _wheel_path(package, relative) in names, f"{folder}/{relative} is not in the wheel"

    presets = sorted(p.name for p in (REPO / "configs").glob("*.yaml"))
    assert "tabletop_pcm.yaml" in presets
    for name in presets:
        assert f"pcm_engine/presets/{name}" in names

    frontend = _data_files(REPO / "frontend")
    assert {"shell.html", "pages/index.html"} <= set(frontend)
    assert any(f.startswith("static/js/") for f in frontend)
    assert any(f.startswith("static/css/") for f in frontend)
    for relative in frontend:
        assert f"pcm_lab_frontend/{relative}" in names

    # the Alembic folder (wherever the store keeps it): env.py, the template and every revision
    migrations = [p.parent for p in REPO.glob("backend/**/migrations/env.py")]
    assert migrations, "no backend/**/migrations/env.py in the source tree"
    for folder in migrations:
        files = _data_files(folder)
        assert "script.py.mako" in files and any(f.startswith("versions/") for f in files)
        for relative in files:
            assert f"{folder.relative_to(REPO).as_posix()}/{relative}" in names

    # nothing else at the top level: no tests/, no configs/ or frontend/ under generic names
    tops = {name.split("/")[0] for name in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == TOP_LEVEL

    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    scripts = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert re.search(r"^pcm\s*=", scripts, re.M), scripts


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_plain_install_runs_pcm_up_and_serves_the_dashboard(wheel, tmp_path):
    """`pip install <wheel>` (not editable) into a new venv, then its own `pcm` entry point."""
    assert not tmp_path.resolve().is_relative_to(REPO), "run from a temporary folder outside the repo"
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", wheel],
        check=True,
        timeout=300,
        env={**os.environ, "PIP_NO_INPUT": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    own_site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    deps = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PCM_", "PYTHON", "VIRTUAL_ENV"))}
    env |= {
        "PYTHONPATH": os.pathsep.join([own_site, *deps]),
        "PYTHONNOUSERSITE": "1",
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": "1",
        "PCM_HEARTBEAT_S": "0.5",
        "PCM_BROKER_POLL_S": "0.2",
    }
    work = tmp_path / "cwd"  # the processes' working folder: empty, outside the source tree
    work.mkdir()

    # the installed modules and data come from the venv, and the checkout is not on the path
    probe = subprocess.run(
        [
            python,
            "-c",
            "import json, sys, importlib\n"
            "names = ['pcm_engine', 'pcm_engine.presets', 'backend', 'worker', 'pcm_lab', "
            "'pcm_lab_frontend', 'pcm_lab.cli']\n"
            "files = {n: importlib.import_module(n).__file__ for n in names}\n"
            "from pcm_engine.config import PRESETS_DIR\n"
            "from backend.pages import FRONTEND_DIR\n"
            "files |= {'PRESETS_DIR': str(PRESETS_DIR), 'FRONTEND_DIR': str(FRONTEND_DIR)}\n"
            "print(json.dumps({'files': files, 'path': sys.path}))",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout)
    for what, file in found["files"].items():
        assert Path(file).resolve().is_relative_to(venv.resolve()), f"{what} imported from {file}"
    for entry in found["path"]:
        assert not (entry and Path(entry).resolve() == REPO), f"the checkout is on sys.path: {entry}"

    pcm = venv / "bin" / "pcm"
    assert pcm.read_text().splitlines()[0] == f"#!{python}", "pcm is not the venv's own entry point"
    presets = subprocess.run([pcm, "presets"], cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert presets.returncode == 0 and "tabletop_pcm" in presets.stdout, presets.stdout + presets.stderr

    port = free_port()
    log_path = tmp_path / "pcm-up.log"
    with open(log_path, "wb") as log:
        up = subprocess.Popen(
            [pcm, "up", "--port", str(port), "--data-dir", tmp_path / "data", "--workers", "1"],
            cwd=work,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> dict | None:
            if up.poll() is not None:
                raise RuntimeError(f"pcm up exited with {up.returncode}\n{log_path.read_text()}")
            try:
                response = httpx.get(f"{base}/api/health", timeout=2)
            except httpx.TransportError:
                return None
            return response.json() if response.status_code == 200 else None

        health = wait_for(healthy, 120, f"{base}/api/health", interval=0.25)
        assert health["status"] == "ok" and health["database"] == "sqlite", health

        with httpx.Client(base_url=base, timeout=30) as client:
            page = client.get("/")
            assert page.status_code == 200 and "<html" in page.text.lower(), page.text[:500]
            assets = sorted(set(re.findall(r"""["'](/static/[^"'?#]+\.(?:js|css))""", page.text)))
            assets = [a for a in assets if not a.startswith("/static/vendor/")]
            assert any(a.endswith(".js") for a in assets), f"no script on the dashboard page: {assets}"
            assets += [f"/static/{f}" for f in _data_files(REPO / "frontend" / "static")]
            for asset in dict.fromkeys(assets):
                response = client.get(asset)
                assert response.status_code == 200, f"{asset}: {response.status_code}"
                shipped = zipfile.ZipFile(wheel).read(f"pcm_lab_frontend{asset}")
                assert response.content == shipped, f"{asset} is not the wheel's"
            listed = client.get("/api/presets")
            assert listed.status_code == 200, listed.text
            assert "tabletop_pcm" in {p["name"] for p in listed.json()}
    finally:
        if up.poll() is None:
            up.send_signal(signal.SIGTERM)  # pcm up stops its API and worker, then exits
        try:
            up.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait()
        print(log_path.read_text(errors="replace")[-6000:])  # shown when the test fails
    assert up.returncode == 0, log_path.read_text(errors="replace")[-6000:]
