"""Health, the static contracts (presets, schema; the dashboard's is test_contract.py), pages,
workers, artifacts and the stale-run sweep."""

from __future__ import annotations

import io
import re
import zipfile
from datetime import timedelta

from backend.store import lifecycle
from backend.store.models import Artifact, Run, WorkerRecord, utcnow
from backend.store.stale import sweep
from pcm_engine.config import RunConfig
from tests.backend.conftest import Api, launch


def test_health_reports_the_profile(client: Api) -> None:
    body = client.get("/api/health").json()
    assert body["status"] == "ok" and body["broker"] == "filesystem" and body["single_user"] is True
    assert body["database"] in ("sqlite", "postgresql") and body["version"]


def test_presets_and_schema(client: Api) -> None:
    presets = {p["name"]: p["config"] for p in client.get("/api/presets").json()}
    assert presets["tabletop_pcm"] == RunConfig.load("configs/tabletop_pcm.yaml").to_dict()
    assert client.get("/api/config-schema").json() == RunConfig.model_json_schema()


def test_pages_and_plotly_are_served(client: Api) -> None:
    plotly = client.get("/static/vendor/plotly.min.js")
    assert plotly.status_code == 200 and "javascript" in plotly.headers["content-type"]
    for url in ("/", "/runs/1", "/compare", "/workers", "/labs", "/login", "/share/abc"):
        page = client.get(url)
        assert page.status_code in (200, 404), url  # 404 only while the frontend lacks the page
        if page.status_code == 200:
            assert page.headers["content-type"].startswith("text/html")
    assert all(path.startswith("/api/") for path in client.get("/openapi.json").json()["paths"])


def test_api_docs_load_their_swagger_ui_from_this_server(client: Api) -> None:
    docs = client.get("/docs")
    assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")
    assets = re.findall(r'(?:src|href)="([^"]+)"', docs.text)
    assert assets and all(a.startswith("/static/vendor/swagger-ui/") for a in assets), assets
    for asset in assets:
        assert client.get(asset).status_code == 200, asset
    assert "'/openapi.json'" in docs.text or '"/openapi.json"' in docs.text
    assert client.get("/static/vendor/swagger-ui/index.html").status_code == 404  # only the listed files
    assert client.get("/redoc").status_code == 404  # it would need a CDN


def test_the_admin_and_default_lab_exist(client: Api) -> None:
    me = client.get("/api/auth/me").json()
    assert me["username"] == "admin" and me["is_admin"]
    assert me["labs"][0]["lab"] == "default" and me["labs"][0]["role"] == "owner"


def test_workers_show_liveness(client: Api) -> None:
    old = utcnow() - timedelta(seconds=client.settings.stale_after_s + 10)
    with client.db() as session:
        session.add(WorkerRecord(name="w-live", hostname="h", pid=1, devices="cpu", heartbeat_at=utcnow()))
        session.add(WorkerRecord(name="w-dead", hostname="h", pid=2, devices="cuda:0", heartbeat_at=old))
    workers = {w["name"]: w["alive"] for w in client.get("/api/workers").json()}
    assert workers == {"w-dead": False, "w-live": True}


def test_artifacts_list_and_download_a_folder_as_zip(client: Api) -> None:
    run_id = launch(client)["id"]
    policy = client.settings.runs_dir / str(run_id) / "policy"
    policy.mkdir(parents=True)
    (policy / "config.json").write_text('{"ok": true}')
    with client.db() as session:
        session.add(
            Artifact(run_id=run_id, kind="policy", step=3, path=str(policy), size_bytes=12, sha256="0" * 64)
        )

    [artifact] = client.get(f"/api/runs/{run_id}/artifacts").json()
    assert artifact["kind"] == "policy" and artifact["step"] == 3
    download = client.get(f"/api/artifacts/{artifact['id']}/download")
    assert download.status_code == 200 and download.headers["content-type"] == "application/zip"
    assert zipfile.ZipFile(io.BytesIO(download.content)).read("config.json") == b'{"ok": true}'
    assert client.get("/api/artifacts/999/download").status_code == 404


def test_the_sweep_marks_runs_without_heartbeat_stale(client: Api) -> None:
    run_id = launch(client)["id"]
    with client.db() as session:
        lifecycle.claim_run(session, run_id, "w1")
        session.get(Run, run_id).heartbeat_at = utcnow() - timedelta(
            seconds=client.settings.stale_after_s + 1
        )

    assert sweep(client.settings) == [run_id]
    assert client.get(f"/api/runs/{run_id}").json()["status"] == "stale"
    assert client.post(f"/api/runs/{run_id}/requeue").json()["status"] == "queued"
