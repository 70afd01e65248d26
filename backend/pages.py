"""The dashboard: HTML pages (frontend/pages/*, each put inside frontend/shell.html: one <head>,
skip link and top bar for all) and assets from frontend/static, plotly.js from the `plotly` wheel and
the API reference (/docs) with Swagger UI from the `fastapi-offline` wheel (no CDN: the lab
machines may have no internet)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles

from backend.headers import with_inline_scripts_allowed


def _frontend_dir() -> Path:
    """The dashboard's files: package data of `pcm_lab_frontend` (the repo's frontend/ folder, mapped
    by pyproject.toml's package-dir), found the same way in an editable and a plain install."""
    try:
        return Path(str(resources.files("pcm_lab_frontend")))
    except ModuleNotFoundError:  # a source tree run without being pip-installed
        return Path(__file__).resolve().parent.parent / "frontend"


FRONTEND_DIR = _frontend_dir()

router = APIRouter(include_in_schema=False)


def _page(name: str, title: str) -> Response:
    """frontend/pages/`name` inside the shell, read per request (edit a page, reload the browser)."""
    shell, path = FRONTEND_DIR / "shell.html", FRONTEND_DIR / "pages" / name
    if not (shell.is_file() and path.is_file()):
        return PlainTextResponse(f"frontend/pages/{name} or frontend/shell.html is missing", status_code=404)
    html = shell.read_text().replace("{title}", title).replace("{body}", path.read_text())
    return HTMLResponse(html, headers={"Cache-Control": "no-cache"})


@router.get("/")
def index() -> Response:
    return _page("index.html", "Runs")


@router.get("/runs/{run_id}")
def run_page(run_id: int) -> Response:
    return _page("run.html", "Run")


@router.get("/compare")
def compare_page() -> Response:
    return _page("compare.html", "Compare")


@router.get("/workers")
def workers_page() -> Response:
    return _page("workers.html", "Workers")


@router.get("/labs")
def labs_page() -> Response:
    return _page("lab.html", "Lab")


@router.get("/login")
def login_page() -> Response:
    return _page("login.html", "Log in")


@router.get("/sweeps/{sweep_id}")
def sweep_page(sweep_id: int) -> Response:
    return _page("sweep.html", "Sweep")


@router.get("/share/sweeps/{token}")
def shared_sweep_page(token: str) -> Response:
    return _page("sweep.html", "Shared sweep")  # the sweep page mounts itself read-only on /share/ paths


@router.get("/share/{token}")
def share_page(token: str) -> Response:
    return _page("run.html", "Shared run")  # the run page mounts itself read-only on /share/ paths


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


SWAGGER_FILES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon.png": "image/png",
}


def swagger_ui_dir() -> Path | None:
    """Swagger UI 5 (it reads OpenAPI 3.1, which FastAPI writes), as `fastapi-offline` ships it."""
    try:
        folder = Path(str(resources.files("fastapi_offline") / "static"))
    except ModuleNotFoundError:
        return None
    return folder if folder.is_dir() else None


@router.get("/docs")
def api_docs(request: Request) -> Response:
    """The interactive API reference, rendered from /openapi.json with the bundled Swagger UI."""
    if swagger_ui_dir() is None:
        return PlainTextResponse(
            "fastapi-offline is not installed: pip install fastapi-offline "
            "(the API description itself is at /openapi.json)",
            status_code=404,
        )
    assets = "/static/vendor/swagger-ui"
    page = get_swagger_ui_html(
        openapi_url=request.app.openapi_url,
        title=f"{request.app.title} API",
        swagger_js_url=f"{assets}/swagger-ui-bundle.js",
        swagger_css_url=f"{assets}/swagger-ui.css",
        swagger_favicon_url=f"{assets}/favicon.png",
    )
    return with_inline_scripts_allowed(page)  # its one inline script starts Swagger UI


@router.get("/static/vendor/swagger-ui/{name}")
def swagger_asset(name: str) -> Response:
    folder = swagger_ui_dir()
    if folder is None or name not in SWAGGER_FILES or not (folder / name).is_file():
        return PlainTextResponse(f"no Swagger UI asset {name!r}", status_code=404)
    return FileResponse(
        folder / name, media_type=SWAGGER_FILES[name], headers={"Cache-Control": "max-age=86400"}
    )


def mount(app: FastAPI) -> None:
    """Page routes first: /static/vendor/plotly.min.js must win over the /static mount."""
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=FRONTEND_DIR / "static", check_dir=False), name="static")
