// The run page, live: header and actions, the training charts, the chunk map, config,
// environment, failure details and artifacts. The share page mounts the same module read-only,
// without login: the share token is its credential for the same read routes a member uses.

import { api, ensureSession, ticketUrl } from "./api.js";
import { SeriesStore, setNoDataText } from "./charts.js";
import { chunkCaption, drawChunkMap } from "./chunks.js";
import { fmtAgo, fmtBytes, fmtDate, fmtProcesses, fmtRanks } from "./format.js";
import { loadContract } from "./contract.js";
import { MediaPanel, mediaToken } from "./media.js";
import { runCharts } from "./runcharts.js";
import { RunHistory, historySection, waitSections } from "./runhistory.js";
import { ShareLinks } from "./sharelinks.js";
import { confirmStep } from "./confirm.js";
import { tagsNotesEditor } from "./runnotes.js";
import { openStream } from "./sse.js";
import { clear, el, mountNav, notice, poll, progressBar, statusBadge, waitingNote } from "./ui.js";

const RUN_REFRESH_MS = 3000;
const CHART_FLUSH_MS = 250; // live points are drawn in batches at most this often

/** A run the caller can see (with their login). */
export function runSource(id) {
  const base = `/api/runs/${id}`;
  return { run: base, artifacts: `${base}/artifacts`, auth: true, readOnly: false };
}

/** A shared run: read-only, no login, no artifacts. `run` resolves the token to the run; the token
 * is then the credential of the run's read routes. */
export function shareSource(token) {
  return { run: `/api/share/${encodeURIComponent(token)}`, artifacts: null, token, auth: false, readOnly: true };
}

/** A run's read routes: the same for its members and for a share link's guests. */
function readRoutes(id) {
  const base = `/api/runs/${id}`;
  return { metrics: `${base}/metrics`, chunks: `${base}/chunks`, events: `${base}/events`, media: `${base}/media` };
}

export async function mountRunPage(source) {
  renderSkeleton(document.getElementById("main"));
  if (!source.readOnly) await ensureSession();
  mountNav({ minimal: source.readOnly, note: source.readOnly ? "read-only shared view" : "" });
  const call = (path, options = {}) => api(path, { auth: source.auth, token: source.token, ...options });
  const page = new RunPage(source, call);
  try {
    await page.start();
  } catch (err) {
    if (err.status === 404 && !page.run) renderNotFound(document.getElementById("main"), source);
    else notice(document.getElementById("run-header"), `Could not load this run: ${err.message}`, "error");
  }
}

/** No such run (or none the caller may see; a revoked share link): a page that says so, not charts. */
function renderNotFound(main, source) {
  document.title = "Run not found · PCM Lab";
  const why = source.readOnly
    ? "This share link does not open a run: it was revoked, or it was mistyped."
    : "There is no run here that you can see: it may have been deleted, the address may be mistyped, "
      + "or the run belongs to a lab you are not a member of.";
  main.replaceChildren(el("section", { class: "card not-found", id: "run-not-found", "aria-labelledby": "not-found-title" },
    el("h1", { id: "not-found-title" }, "Run not found"),
    el("p", {}, why),
    source.readOnly ? null : el("p", {}, el("a", { href: "/" }, "← all runs"))));
}

/** The page's sections (the same for /runs/<id> and /share/<token>, both served by run.html). */
function renderSkeleton(main) {
  main.replaceChildren(
    el("section", { id: "run-header", class: "card run-header", "aria-label": "run" },
      el("div", { id: "run-info" }, el("p", { class: "muted" }, "Loading…")),
      el("div", { id: "run-actions" })),
    el("div", { id: "run-failure" }),
    ...waitSections(),
    el("section", { "aria-labelledby": "charts-title" },
      el("h2", { id: "charts-title" }, "Training, live"),
      el("div", { id: "charts", class: "chart-grid" })),
    el("section", { class: "card", "aria-labelledby": "chunks-title" },
      el("div", { class: "section-head" },
        el("h2", { id: "chunks-title" }, "Which chunks got gradients"),
        el("div", { class: "field inline-field" },
          el("label", { for: "chunk-step" }, "step"),
          el("select", { id: "chunk-step" }, el("option", { value: "" }, "latest (follows live)")))),
      el("p", { class: "help" }, "Recorded trajectories (rows) × chunk index. Colour = phase; bright with × = "
        + "back-propagated, faded = dropped before the forward pass (hover it for why: its group all succeeded or all "
        + "failed, or the selector left it out); the square on the left = the trajectory's outcome."),
      el("div", { id: "chunk-map", class: "chart", role: "img", "aria-label": "chunk mask heat map" }),
      el("div", { id: "chunk-caption" })),
    el("section", { id: "media-panel", class: "card", "aria-labelledby": "media-title" }),
    historySection(),
    el("div", { id: "run-details", class: "details-stack" }));
}

/** Which worker runs which node and ranks of a distributed run (its `placement`, written by the
 * worker that started the ranks and kept up to date as other workers take, leave or end the
 * other nodes; members only: a share link's answer has none). */
function placementTable(placement) {
  return el("table", { class: "table placement-table", id: "run-placement", "aria-label": "where the ranks train" },
    el("thead", {}, el("tr", {}, ...["worker", "node", "ranks", "state"].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, placement.nodes.map((node) => el("tr", {},
      el("td", { class: node.worker ? "" : "muted" }, node.worker ?? "waiting for a worker"),
      el("td", {}, node.node_rank),
      el("td", {}, fmtRanks(node.ranks)),
      el("td", {}, node.state ?? "joined")))));
}

/** Background work (live updates) must not end in an unhandled rejection: report and go on. */
function quietly(promise, what) {
  return promise.catch((err) => console.warn(`${what} failed:`, err));
}

class RunPage {
  constructor(source, call) {
    this.source = source;
    this.call = call;
    this.store = new SeriesStore();
    this.charts = [];
    this.run = null;
    this.stream = null;
    this.flushTimer = null;
    this.chunkStep = null; // null = follow the latest step
    this.chunkSteps = [];
    this.chunkTimer = null;
  }

  async start() {
    const [M, run] = await Promise.all([loadContract(), this.call(this.source.run)]);
    this.M = M;
    this.reads = readRoutes(run.id);
    this.history = new RunHistory(M, this.store);
    this.setRun(run);
    this.buildActions();
    this.buildCharts(runCharts(M, run));
    this.charts.push(this.history.chart);
    this.buildChunkControls();
    this.media = new MediaPanel(document.getElementById("media-panel"), {
      M, call: this.call, listUrl: this.reads.media, token: mediaToken(this.source),
      requestUrl: this.source.readOnly ? null : `${this.source.run}/media/requests`,
    });
    this.media.setRun(run);
    quietly(this.media.refresh(), "episode media");
    await Promise.all([this.loadMetrics(), this.loadChunks()]);
    this.explainNoData();
    quietly(this.renderDetails(), "run details");
    if (M.isFinal(run.status)) this.setLive("finished");
    else this.openStream();
    poll(() => this.refreshRun(), RUN_REFRESH_MS, () => this.run && !M.isFinal(this.run.status));
  }

  // --- header -------------------------------------------------------------------------------

  setRun(run) {
    const previous = this.run;
    this.run = run;
    document.title = `${run.name} · PCM Lab`;
    this.renderHeader();
    this.history?.render(run);
    this.media?.setRun(run);
    this.updateActions();
    if (previous && previous.status !== run.status) {
      quietly(this.renderDetails(), "run details");
      this.explainNoData();
    }
  }

  /** A run that has ended says so on its empty charts instead of "waiting for data…" forever
   * (e.g. cancelled while queued, or a GRPO run whose every group was dropped: no loss). */
  explainNoData() {
    const r = this.run;
    if (!this.charts.length || !this.M.isFinal(r.status)) return;
    let text = `the run ${r.status} without logging these`;
    if (!this.store.steps.length) {
      text = r.started_at ? `${r.status} before its first step: no data` : `${r.status} before it started: no data`;
    }
    for (const node of document.querySelectorAll("#charts .chart")) setNoDataText(node, text);
    for (const chart of this.charts) chart.render(this.store);
  }

  renderHeader() {
    const r = this.run;
    const meta = [
      ["selector", el("code", {}, r.selector)],
      ["preset", r.preset || "—"],
      ["env", r.env_name],
      ["owner", r.owner],
      ["worker", r.worker || "—"],
      ["processes", el("span", { id: "run-processes" }, fmtProcesses(r.config?.dist))],
      r.placement ? ["rendezvous", el("code", { id: "run-endpoint" }, r.placement.endpoint)] : null,
      ["created", el("time", { datetime: r.created_at, title: fmtDate(r.created_at) }, fmtAgo(r.created_at))],
      ["started", fmtDate(r.started_at)],
      ["finished", fmtDate(r.finished_at)],
      // A worker's heartbeat matters while the run is live (a stale one means the worker is gone).
      this.M.isFinal(r.status) ? null
        : ["heartbeat", r.heartbeat_at ? el("time", { datetime: r.heartbeat_at }, fmtAgo(r.heartbeat_at)) : "—"],
      ["config hash", el("code", {}, r.config_hash)],
      r.tags?.length ? ["tags", el("span", { id: "run-tag-list" }, ...r.tags.map((t) => el("span", { class: "tag" }, t)))] : null,
      r.sweep_id ? ["sweep", el("a", { href: `/sweeps/${r.sweep_id}`, id: "run-sweep-link" }, `sweep #${r.sweep_id}`)] : null,
    ];
    const info = document.getElementById("run-info");
    clear(info).append(
      el("div", { class: "run-title" },
        el("h1", {}, r.name, el("span", { class: "muted run-id" }, ` #${r.id}`)),
        statusBadge(r.status),
        waitingNote(r),
        r.cancel_requested && this.M.isActive(r.status) ? el("span", { class: "muted" }, "cancel requested") : null,
        this.progressMessage && this.M.isActive(r.status) ? el("span", { class: "muted", id: "progress-message" }, this.progressMessage) : null,
        el("span", { id: "live-state", class: `live live-${this.liveState || "off"}`, role: "status" }, this.liveLabel())),
      el("div", { class: "run-progress" }, progressBar(r.steps_done, r.steps_total)),
      el("dl", { class: "meta" }, ...meta.filter(Boolean).map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", {}, v)))),
      r.placement ? placementTable(r.placement) : null);
  }

  liveLabel() {
    return { live: "● live", reconnecting: "reconnecting…", finished: "final", off: "not live" }[this.liveState || "off"];
  }

  setLive(state) {
    this.liveState = state;
    const badge = document.getElementById("live-state");
    if (badge) {
      badge.className = `live live-${state}`;
      badge.textContent = this.liveLabel();
    }
  }

  buildActions() {
    const bar = document.getElementById("run-actions");
    if (this.source.readOnly) {
      bar.hidden = true;
      return;
    }
    const message = el("div", { class: "action-message", role: "status", id: "action-message" });
    const act = async (label, path, body) => {
      try {
        const run = await this.call(path, { method: "POST", body });
        this.setRun(run);
        return run;
      } catch (err) {
        notice(message, `${label} failed: ${err.message}`, "error");
        return null;
      }
    };
    const cancelConfirm = confirmStep({
      id: "cancel-confirm",
      question: "Cancel this run? A running run stops after its current step (it can be requeued).",
      confirmLabel: "Yes, cancel it",
      keepLabel: "Keep it",
      onConfirm: () => act("Cancel", `${this.source.run}/cancel`),
      returnFocus: () => this.cancelButton,
    });
    this.cancelButton = el("button", { type: "button", class: "btn btn-danger", id: "cancel-run",
      onclick: () => cancelConfirm.ask() }, "Cancel");
    this.requeueButton = el("button", { type: "button", class: "btn", id: "requeue-run",
      onclick: async () => {
        if (await act("Requeue", `${this.source.run}/requeue`)) this.openStream();
      } }, "Requeue");

    // Clone: the launch form, filled from this run's config.
    const cloneToggle = el("a", { class: "btn", id: "clone-run", href: `/?clone=${this.run.id}` }, "Clone…");

    // Share: a new link (shown once, copied), and the run's links, revocable.
    const shares = new ShareLinks({ call: this.call, base: this.source.run, message });
    quietly(shares.refresh(), "share links");

    clear(bar).append(
      el("div", { class: "actions" }, this.cancelButton, this.requeueButton, cloneToggle, shares.button,
        el("a", { class: "btn", href: `/compare?ids=${this.run.id}` }, "Compare…")),
      cancelConfirm.node, shares.url, message, shares.list,
      tagsNotesEditor(this.run, async (changes) => {
        const run = await this.call(this.source.run, { method: "PATCH", body: changes });
        this.setRun(run);
        return run;
      }));
    this.updateActions();
  }

  updateActions() {
    if (this.source.readOnly || !this.cancelButton) return;
    const { status, cancel_requested: requested } = this.run;
    this.cancelButton.hidden = !this.M.statuses.cancellable.includes(status);
    this.cancelButton.disabled = Boolean(requested);
    this.cancelButton.textContent = requested ? "Cancelling…" : "Cancel";
    this.requeueButton.hidden = !(this.M.statuses.requeueable.includes(status) || this.run.waiting_for_worker_since);
  }

  async refreshRun() {
    // Coalesce: many status events in a row need one fetch.
    if (this.refreshing) {
      this.refreshAgain = true;
      return this.refreshing;
    }
    this.refreshing = (async () => {
      do {
        this.refreshAgain = false;
        this.setRun(await this.call(this.source.run));
      } while (this.refreshAgain);
    })().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  // --- charts -------------------------------------------------------------------------------

  buildCharts(defs) {
    const grid = clear(document.getElementById("charts"));
    for (const def of defs) {
      const node = el("div", { id: def.id, class: "chart", role: "img", "aria-label": def.title });
      grid.append(el("figure", { class: `card chart-card${def.wide ? " wide" : ""}` },
        el("figcaption", {}, el("h3", {}, def.title), el("p", { class: "help" }, def.help)), node));
      this.charts.push(def.make(node, [...this.charts]));
    }
  }

  async loadMetrics(sinceStep) {
    const answer = await this.call(this.reads.metrics, {
      query: { since_step: sinceStep },
    });
    this.store.addSeries(answer.series);
    // the live stream starts after what these series hold, not at the run's first event
    this.streamAfter = Math.max(this.streamAfter ?? 0, answer.last_event_id ?? 0);
    for (const chart of this.charts) chart.render(this.store);
    this.store.commit();
  }

  scheduleFlush() {
    if (this.flushTimer) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = null;
      for (const chart of this.charts) chart.update(this.store);
      this.store.commit();
    }, CHART_FLUSH_MS);
  }

  // --- live stream --------------------------------------------------------------------------

  openStream() {
    if (this.stream) this.stream.close();
    const after = this.streamAfter ? `?last_event_id=${this.streamAfter}` : "";
    // a stream opened again (after a requeue) starts after the last event this page saw
    const seen = (handle) => (data, event) => {
      this.streamAfter = Math.max(this.streamAfter ?? 0, Number(event.lastEventId) || 0);
      handle(data);
    };
    this.stream = openStream(this.reads.events + after, {
      metrics: seen((event) => {
        const payload = event.payload || {};
        this.store.addRow(payload.step ?? event.step, payload.metrics);
        this.scheduleFlush();
      }),
      status: seen((event) => quietly(this.onStatusEvent(event.payload || {}), "status update")),
      chunks: seen((event) => this.onChunksEvent((event.payload || {}).step ?? event.step)),
      media: seen(() => quietly(this.media.refresh(), "episode media")),
    }, (state) => quietly(this.onStreamState(state), "stream state"),
    { runId: this.run.id, token: this.source.token, auth: this.source.auth });
  }

  async onStatusEvent(payload) {
    // Status events with a message are progress notes ("building the SFT start…"); a bare
    // status event is a transition and ends the note.
    this.progressMessage = payload.message || null;
    await this.refreshRun();
    if (this.M.isFinal(this.run.status)) this.scheduleFlush();
  }

  async onStreamState(state) {
    if (state === "closed" && this.finishing) return;
    this.setLive(state === "closed" ? "off" : state);
    // The server ends the stream once the run is final; EventSource would reconnect forever.
    if (state === "reconnecting") {
      await this.refreshRun();
      if (this.M.isFinal(this.run.status)) this.finishStream();
    }
  }

  finishStream() {
    this.finishing = true;
    this.stream.close();
    this.stream = null;
    this.finishing = false;
    this.setLive("finished");
    this.scheduleFlush();
    quietly(this.loadChunks(), "chunk map");
    quietly(this.renderDetails(), "run details");
  }

  // --- chunk map ----------------------------------------------------------------------------

  buildChunkControls() {
    this.chunkSelect = document.getElementById("chunk-step");
    this.chunkSelect.addEventListener("change", () => {
      this.chunkStep = this.chunkSelect.value === "" ? null : Number(this.chunkSelect.value);
      quietly(this.loadChunks(), "chunk map");
    });
  }

  renderChunkSteps() {
    const current = this.chunkSelect.value;
    clear(this.chunkSelect).append(
      el("option", { value: "" }, "latest (follows live)"),
      ...[...this.chunkSteps].reverse().map((s) => el("option", { value: String(s) }, `step ${s}`)));
    this.chunkSelect.value = current;
  }

  onChunksEvent(step) {
    if (!this.chunkSteps.includes(step)) {
      this.chunkSteps.push(step);
      this.chunkSteps.sort((a, b) => a - b);
      this.renderChunkSteps();
    }
    if (this.chunkStep !== null) return;
    clearTimeout(this.chunkTimer);
    this.chunkTimer = setTimeout(() => quietly(this.loadChunks(), "chunk map"), CHART_FLUSH_MS);
  }

  async loadChunks() {
    // Loads can overlap (a live event, a step picked in the selector): only the newest one may
    // draw, or a slow earlier answer would replace the step the user just chose.
    const ticket = (this.chunksTicket = (this.chunksTicket || 0) + 1);
    const answer = await this.call(this.reads.chunks, { query: { step: this.chunkStep ?? undefined } });
    if (ticket !== this.chunksTicket) return;
    this.chunkSteps = answer.steps || [];
    this.renderChunkSteps();
    const node = document.getElementById("chunk-map");
    const stats = drawChunkMap(node, answer.records || [], this.M, {
      selector: this.run.selector,
      dynamicSampling: this.run.config?.grpo?.dynamic_sampling ?? true,
    });
    const caption = clear(document.getElementById("chunk-caption"));
    if (answer.step !== null && answer.step !== undefined) caption.append(chunkCaption(answer.step, stats));
    node.dataset.step = answer.step ?? "";
    node.dataset.records = String((answer.records || []).length);
  }

  // --- config, environment, failure, artifacts -----------------------------------------------

  async renderDetails() {
    // Status changes can call this while an earlier call still awaits the artifacts: only the
    // newest call may write, and it writes everything at once.
    const ticket = (this.detailsTicket = (this.detailsTicket || 0) + 1);
    const r = this.run;
    const failure = [];
    if (r.error || r.traceback) {
      failure.push(el("section", { class: "card failure", "aria-labelledby": "failure-title" },
        el("h2", { id: "failure-title" }, `Run ${r.status}`),
        el("p", { class: "error-text" }, r.error || ""),
        r.traceback ? el("details", { open: true }, el("summary", {}, "traceback"), el("pre", { class: "traceback" }, r.traceback)) : null));
    }
    const json = (title, value, id) => el("details", { class: "card json-block", id },
      el("summary", {}, title), el("pre", {}, JSON.stringify(value, null, 2)));
    const details = [
      r.config ? json("Config", r.config, "config-block") : null,
      r.environment ? json("Environment (captured by the worker)", r.environment, "environment-block") : null,
      this.source.artifacts ? await this.artifactsBlock() : null,
    ];
    if (ticket !== this.detailsTicket) return;
    // Keep open <details> open across a redraw.
    const open = new Set([...document.querySelectorAll("#run-details details[open]")].map((d) => d.id));
    for (const d of details) if (d && open.has(d.id)) d.open = true;
    document.getElementById("run-failure").replaceChildren(...failure);
    document.getElementById("run-details").replaceChildren(...details.filter(Boolean));
  }

  async artifactsBlock() {
    const box = el("section", { class: "card", id: "artifacts-block", "aria-labelledby": "artifacts-title" },
      el("h2", { id: "artifacts-title" }, "Checkpoints and artifacts"));
    let artifacts = [];
    try {
      artifacts = await this.call(this.source.artifacts);
    } catch (err) {
      box.append(el("p", { class: "notice notice-error" }, err.message));
      return box;
    }
    if (!artifacts.length) {
      box.append(el("p", { class: "muted" }, "None yet."));
      return box;
    }
    box.append(el("table", { class: "table" },
      el("thead", {}, el("tr", {}, ...["kind", "step", "size", "sha256", ""].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, artifacts.map((a) => el("tr", {},
        el("td", {}, a.kind), el("td", { class: "num" }, a.step), el("td", { class: "num" }, fmtBytes(a.size_bytes)),
        el("td", {}, el("code", { title: a.sha256 }, a.sha256.slice(0, 12))),
        el("td", {}, this.downloadLink(a)))))));
    return box;
  }

  /** A plain link (single-user mode needs nothing more); a click swaps in a fresh ticket, as a
   * token never goes into a URL. */
  downloadLink(artifact) {
    const path = `/api/artifacts/${artifact.id}/download`;
    const link = el("a", { href: path, download: "", onclick: async (event) => {
      event.preventDefault();
      try {
        el("a", { href: await ticketUrl(path, { purpose: "download", runId: this.run.id }), download: "" }).click();
      } catch (err) {
        link.after(el("span", { class: "notice notice-error", role: "alert" }, ` Could not download: ${err.message}`));
      }
    } }, "download");
    return link;
  }
}
