"""The dashboard: static HTML pages and assets from frontend/, and plotly.js from the `plotly` wheel
(no CDN: the lab machines may have no internet)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles

FRONTEND_DIR = Path(__file__).resolve().parent.parent / "frontend"

router = APIRouter(include_in_schema=False)


def _page(name: str) -> Response:
    path = FRONTEND_DIR / name
    if not path.is_file():
        return PlainTextResponse(f"frontend/{name} is missing", status_code=404)
    return FileResponse(path, media_type="text/html", headers={"Cache-Control": "no-cache"})


@router.get("/")
def index() -> Response:
    return _page("index.html")


@router.get("/runs/{run_id}")
def run_page(run_id: int) -> Response:
    return _page("run.html")


@router.get("/compare")
def compare_page() -> Response:
    return _page("compare.html")


@router.get("/labs")
def labs_page() -> Response:
    return _page("lab.html")


@router.get("/login")
def login_page() -> Response:
    return _page("login.html")


@router.get("/share/{token}")
def share_page(token: str) -> Response:
    return _page("run.html")  # the run page mounts itself read-only on /share/ paths


def plotly_js() -> Path | None:
    try:
        path = Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))
    except ModuleNotFoundError:
        return None
    return path if path.is_file() else None


@router.get("/static/vendor/plotly.min.js")
def plotly() -> Response:
    path = plotly_js()
    if path is None:
        return PlainTextResponse("plotly is not installed: pip install plotly", status_code=404)
    return FileResponse(path, media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})


def mount(app: FastAPI) -> None:
    """Page routes first: /static/vendor/plotly.min.js must win over the /static mount."""
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=FRONTEND_DIR / "static", check_dir=False), name="static")
