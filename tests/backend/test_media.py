"""GET /api/runs/{id}/media and its files: the listing, the run's read rules (members, share
links, tickets) and no way out of the run folder."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np

from backend.store.models import Run, RunMedia
from tests.backend.conftest import Api, launch
from tests.backend.test_security import Lab, lab  # noqa: F401 (the fixture)

CHUNKS = [{"chunk": 0, "phase": "approach", "kept": False}, {"chunk": 1, "phase": "grasp", "kept": True}]


def add_media(
    client: Api, run_id: int, *, step: int, task: int, success: bool, path: str | None = None
) -> bytes:
    """A real GIF in the run's folder and its row; returns the file's bytes (none for a bad `path`)."""
    relative = path or f"media/step_{step:06d}/task{task}_traj{int(success)}.gif"
    data = b""
    with client.db() as session:
        run = session.get(Run, run_id)
        folder = Path(run.run_dir) if run.run_dir else client.settings.runs_dir / str(run_id)
        if path is None:
            gif = folder / relative
            gif.parent.mkdir(parents=True, exist_ok=True)
            frames = np.full((2, 8, 8, 3), 200 if success else 40, dtype=np.uint8)
            frames[1, 0, 0] = 0
            iio.imwrite(gif, frames, extension=".gif", duration=250, loop=0)
            data = gif.read_bytes()
        session.add(
            RunMedia(
                run_id=run_id, step=step, task=task, trajectory=int(success), success=success,
                instruction=f"task {task}", path=relative, content_type="image/gif", frame_ms=250,
                chunks=CHUNKS,
            )
        )  # fmt: skip
    return data


def test_the_listing_names_each_episode_and_its_url_serves_the_gif(client: Api) -> None:
    run = launch(client)
    win = add_media(client, run["id"], step=10, task=1, success=True)
    add_media(client, run["id"], step=10, task=0, success=False)
    add_media(client, run["id"], step=20, task=0, success=False)

    listed = client.get(f"/api/runs/{run['id']}/media")
    assert listed.status_code == 200, listed.text
    items = listed.json()
    assert [(m["step"], m["task"], m["success"]) for m in items] == [
        (10, 0, False),
        (10, 1, True),
        (20, 0, False),
    ]
    assert all({"step", "task", "success", "url", "content_type", "chunks"} <= set(m) for m in items)
    assert items[1]["chunks"] == CHUNKS and items[1]["content_type"] == "image/gif"
    served = client.get(items[1]["url"])
    assert served.status_code == 200 and served.headers["content-type"] == "image/gif"
    assert served.content == win
    assert iio.imread(served.content, index=None, extension=".gif").ndim == 4

    only = client.get(f"/api/runs/{run['id']}/media", params={"step": 10, "task": 1}).json()
    assert [m["url"] for m in only] == [items[1]["url"]]
    assert client.get(f"/api/runs/{run['id']}/media", params={"step": -1}).status_code == 422


def test_a_file_is_served_only_from_inside_its_run_folder(client: Api) -> None:
    run, other = launch(client), launch(client, name="other")
    add_media(client, run["id"], step=1, task=0, success=True, path="../../../../../../etc/passwd")
    add_media(client, run["id"], step=2, task=0, success=True, path="/etc/passwd")
    add_media(client, other["id"], step=1, task=0, success=True)
    listed = client.get(f"/api/runs/{run['id']}/media").json()
    for item in listed:  # a row that points outside (never written by a worker) serves nothing
        assert client.get(item["url"]).status_code == 403
    theirs = client.get(f"/api/runs/{other['id']}/media").json()[0]
    media_id = theirs["url"].split("/")[-2]
    # another run's media under this run's id: not found; a path in the URL is no media id
    assert client.get(f"/api/runs/{run['id']}/media/{media_id}/file").status_code == 404
    assert client.get(f"/api/runs/{run['id']}/media/..%2F..%2Fetc%2Fpasswd/file").status_code in (404, 422)
    assert client.get(f"/api/runs/{run['id']}/media/0/file").status_code == 422


def test_media_follow_the_runs_read_rules(lab: Lab) -> None:  # noqa: F811
    client, alice = lab.client, lab.as_("alice")
    run = lab.launch("alice", visibility="lab")
    data = add_media(client, run["id"], step=5, task=0, success=True)
    listing = f"/api/runs/{run['id']}/media"
    url = client.get(listing, headers=alice).json()[0]["url"]

    assert client.get(url, headers=alice).content == data
    assert client.get(url, headers=lab.as_("carol")).status_code == 200  # a viewer of the lab reads
    for path in (listing, url):  # another lab's member: as if it did not exist; nobody: 401
        assert client.get(path, headers=lab.as_("bob")).status_code == 404, path
        assert client.get(path).status_code == 401, path

    token = client.post(f"/api/runs/{run['id']}/share", headers=alice).json()["token"]
    guest = {"Authorization": f"Bearer {token}"}
    assert client.get(listing, headers=guest).json() == client.get(listing, headers=alice).json()
    assert client.get(url, headers=guest).content == data
    other = lab.launch("alice", visibility="lab")
    add_media(client, other["id"], step=5, task=0, success=False)
    other_url = client.get(f"/api/runs/{other['id']}/media", headers=alice).json()[0]["url"]
    assert client.get(other_url, headers=guest).status_code == 404  # the link opens one run only

    # a link (an <a href>, no header) takes a single-use download ticket for this run
    ticket = client.post(
        "/api/tickets", json={"purpose": "download", "run_id": run["id"]}, headers=alice
    ).json()["ticket"]
    assert client.get(other_url, params={"ticket": ticket}).status_code == 404  # for another run
    ticket = client.post(
        "/api/tickets", json={"purpose": "download", "run_id": run["id"]}, headers=alice
    ).json()["ticket"]
    assert client.get(url, params={"ticket": ticket}).content == data
    assert client.get(url, params={"ticket": ticket}).status_code == 401  # used up
