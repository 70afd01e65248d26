// The workers page: each registered worker, its devices (rank slots / GPUs, as it reports them),
// whether it is alive, and the run it holds — for a distributed run, its node and ranks. The API
// names a run only to a caller who may see it; a worker busy with any other run says just that.

import { api, ensureSession } from "./api.js";
import { fmtAgo, fmtNode } from "./format.js";
import { clear, el, mountNav, notice, poll } from "./ui.js";

const REFRESH_MS = 5000;

export async function mountWorkersPage() {
  await ensureSession();
  mountNav();
  const refresh = async () => {
    try {
      renderWorkers(await api("/api/workers"));
      clear(document.getElementById("workers-message"));
    } catch (err) {
      notice(document.getElementById("workers-message"), `Could not load workers: ${err.message}`, "error");
    }
  };
  await refresh();
  poll(refresh, REFRESH_MS);
}

/** "run #12 name · ranks 0–1 (node 0)", "busy with a run you may not see", or "idle". */
export function heldRun(worker) {
  const { run } = worker;
  if (run) {
    return [el("a", { href: `/runs/${run.id}` }, `run #${run.id}`), " ", el("span", { class: "muted" }, run.name),
      run.ranks.length ? ` · ${fmtNode(run)}` : null];
  }
  if (worker.busy) return el("span", { class: "muted" }, "busy with a run you may not see");
  return el("span", { class: "muted" }, "idle");
}

function renderWorkers(workers) {
  const table = clear(document.getElementById("workers-table"));
  if (!workers.length) {
    table.append(el("caption", {}, "No worker has registered yet: start one with pcm worker."));
    return;
  }
  table.append(
    el("thead", {}, el("tr", {}, ...["worker", "host", "devices", "heartbeat", "run"].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, workers.map((w) => el("tr", { "data-worker": w.name },
      el("td", {}, w.name),
      el("td", {}, w.hostname),
      el("td", { class: "worker-devices" }, el("code", {}, w.devices)),
      el("td", {}, el("time", { datetime: w.heartbeat_at }, fmtAgo(w.heartbeat_at)), w.alive ? null : " (gone)"),
      el("td", { class: "worker-run" }, heldRun(w))))));
}
