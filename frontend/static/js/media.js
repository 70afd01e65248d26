// The run page's episode panel: recorded rollouts (GET /api/runs/{id}/media, a few per task at
// every eval step, successes and failures) played as animated GIFs beside a timeline strip of the
// episode's chunks — phase colour, ✓ where the chunk was back-propagated, faded where it was
// dropped — and its outcome. A moving marker follows the chunk on screen (each chunk shows
// `frame_ms`). The file is fetched with the page's credential (a login or a share link's token,
// as a header) and shown as a data: URL, so no token or ticket goes into an <img> URL.
// While the run is running, whoever may change it asks for the episodes of the step it trains
// ("Record the next step", POST .../media/requests); the `media` event then brings them.

import { getToken } from "./api.js";
import { fade, phaseColor, phaseLabel } from "./phases.js";
import { clear, el, notice } from "./ui.js";

/** `item.url`'s bytes as a data: URL, fetched with `token` (none in single-user mode). */
async function fetchDataUrl(url, token) {
  const response = await fetch(url, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  const blob = await response.blob();
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

/** "✓ success" / "✗ failure" in the contract's outcome colours. */
function outcomeBadge(M, success) {
  const color = M.colors.outcomes[success ? "success" : "failure"];
  return el("span", { class: "media-outcome", style: { background: color }, "data-success": String(success) },
    success ? "✓ success" : "✗ failure");
}

/** The episode's chunks in order, one cell each, then its outcome. */
export function chunkStrip(M, item) {
  const cells = item.chunks.map((c) => {
    const index = M.phases.indexOf(c.phase);
    const color = phaseColor(index < 0 ? M.phases.length : index);
    return el("li", {
      class: `media-chunk${c.kept ? " kept" : ""}`,
      style: { background: c.kept ? color : fade(color) },
      title: `chunk ${c.chunk}: ${phaseLabel(c.phase)}, ${c.kept ? "back-propagated" : "dropped"}`,
      dataset: { chunk: String(c.chunk), phase: c.phase, kept: String(c.kept) },
    }, c.kept ? "✓" : "");
  });
  return el("div", { class: "media-strip-row" },
    el("ol", { class: "media-strip", "aria-label": "chunks of the episode" }, ...cells),
    outcomeBadge(M, item.success));
}

export class MediaPanel {
  /** `node` gets the panel; `call` is the page's api() (its credential); `token` that credential;
   * `requestUrl` where to ask for the next step's episodes (none on a read-only page). */
  constructor(node, { M, call, listUrl, token, requestUrl = null }) {
    this.node = node;
    this.M = M;
    this.call = call;
    this.listUrl = listUrl;
    this.token = token;
    this.requestUrl = requestUrl;
    this.pending = null; // {step}: the step whose episodes were asked for, until they are listed
    this.askable = false;
    this.items = [];
    this.step = null; // null = the latest recorded step (follows live)
    this.task = null;
    this.chosen = null;
    this.loads = 0;
    this.cursorTimer = null;
    this.stepSelect = el("select", { id: "media-step" });
    this.taskSelect = el("select", { id: "media-task" });
    this.stepSelect.addEventListener("change", () => {
      this.step = this.stepSelect.value === "" ? null : Number(this.stepSelect.value);
      this.chosen = null;
      this.render();
    });
    this.taskSelect.addEventListener("change", () => {
      this.task = Number(this.taskSelect.value);
      this.chosen = null;
      this.render();
    });
    this.episodes = el("div", { class: "media-episodes", role: "group", "aria-label": "episodes" });
    this.image = el("img", { id: "media-player", class: "media-player", alt: "recorded episode" });
    this.strip = el("div", { id: "media-strip" });
    this.caption = el("p", { class: "help", id: "media-caption" });
    this.message = el("div", { id: "media-message" });
    this.requestButton = el("button", { type: "button", class: "btn", id: "media-request", hidden: true,
      onclick: () => this.requestNext() }, "Record the next step");
    this.requestStatus = el("span", { class: "muted", id: "media-request-status", role: "status" });
    this.requestError = el("div", { id: "media-request-error" });
    clear(node).append(
      el("div", { class: "section-head" },
        el("h2", { id: "media-title" }, "Watch the rollouts"),
        el("div", { class: "media-controls" },
          el("div", { class: "field inline-field" }, el("label", { for: "media-step" }, "step"), this.stepSelect),
          el("div", { class: "field inline-field" }, el("label", { for: "media-task" }, "task"), this.taskSelect),
          this.requestButton, this.requestStatus)),
      el("p", { class: "help" }, "Training rollouts recorded at each eval step (eval.record_episodes per task; "
        + "a success and a failure when both exist), and at any step asked for with “Record the next step” "
        + "while the run trains. Strip: the episode's chunks in order, colour = phase, "
        + "✓ = back-propagated, faded = dropped; the outlined chunk is the one on screen."),
      this.requestError, this.message, this.episodes,
      el("div", { class: "media-view" }, this.image, el("div", { class: "media-side" }, this.caption, this.strip)));
  }

  /** Reload the listing (on start, and when the live stream reports new media). */
  async refresh() {
    const load = (this.loads += 1);
    const items = await this.call(this.listUrl);
    if (load !== this.loads) return;
    this.items = items;
    this.notePendingServed();
    this.render();
  }

  /** The run as the page last read it: the button shows while it may be asked (a running run,
   * a caller who may change it); a request made elsewhere (another tab) shows as pending. */
  setRun(run) {
    this.askable = Boolean(this.requestUrl) && run.may_change && this.M.statuses.recordable.includes(run.status);
    if (!this.askable) this.pending = null; // the run stopped: a request waits for its next attempt
    else if (run.media_requested_at && !this.pending) this.pending = { step: run.steps_done + 1 };
    this.renderRequest();
  }

  async requestNext() {
    this.requestButton.disabled = true;
    clear(this.requestError);
    try {
      const answer = await this.call(this.requestUrl, { method: "POST" });
      this.pending = { step: answer.step };
      if (this.notePendingServed()) this.render(); // an eval step that just ended may hold it already
    } catch (err) {
      notice(this.requestError, `Could not ask for the episodes: ${err.message}`, "error");
    }
    this.renderRequest();
  }

  /** Once the asked-for step (or a later one, if the request came as that step ended) is listed,
   * the panel follows the latest recorded step, which holds it, and says so; true if it was. */
  notePendingServed() {
    if (!this.pending) return false;
    const served = this.items.filter((m) => m.step >= this.pending.step).map((m) => m.step);
    if (!served.length) return false;
    this.pending = null;
    this.step = null;
    this.chosen = null;
    this.requestStatus.textContent = `step ${Math.min(...served)} recorded`;
    this.renderRequest();
    return true;
  }

  renderRequest() {
    this.requestButton.hidden = !this.askable;
    this.requestButton.disabled = Boolean(this.pending);
    this.node.dataset.pendingStep = this.pending ? String(this.pending.step) : "";
    if (this.pending) this.requestStatus.textContent = `recording step ${this.pending.step}…`;
    else if (this.requestStatus.textContent.startsWith("recording")) this.requestStatus.textContent = "";
  }

  render() {
    const steps = [...new Set(this.items.map((m) => m.step))].sort((a, b) => b - a);
    this.node.dataset.count = String(this.items.length);
    if (!steps.length) {
      clear(this.message).append(el("p", { class: "muted" },
        "No episodes recorded yet: they are saved at every eval step (eval.every) unless eval.record_episodes is 0, "
        + "and at a step asked for with “Record the next step” while the run trains."));
      this.episodes.replaceChildren();
      this.strip.replaceChildren();
      this.caption.textContent = "";
      this.image.hidden = true;
      return;
    }
    clear(this.message);
    const step = this.step ?? steps[0];
    clear(this.stepSelect).append(el("option", { value: "" }, `latest (step ${steps[0]})`),
      ...steps.map((s) => el("option", { value: String(s) }, `step ${s}`)));
    this.stepSelect.value = this.step === null ? "" : String(this.step);
    const atStep = this.items.filter((m) => m.step === step);
    const tasks = [...new Set(atStep.map((m) => m.task))].sort((a, b) => a - b);
    if (!tasks.includes(this.task)) this.task = tasks[0];
    clear(this.taskSelect).append(...tasks.map((t) => {
      const first = atStep.find((m) => m.task === t);
      return el("option", { value: String(t) }, `task ${t}: ${first.instruction}`);
    }));
    this.taskSelect.value = String(this.task);
    const episodes = atStep.filter((m) => m.task === this.task);
    if (!episodes.some((m) => m.id === this.chosen)) this.chosen = episodes[0].id;
    clear(this.episodes).append(...episodes.map((m) => el("button", {
      type: "button",
      class: `btn media-episode${m.id === this.chosen ? " active" : ""}`,
      "aria-pressed": String(m.id === this.chosen),
      dataset: { mediaId: String(m.id), success: String(m.success) },
      onclick: () => {
        this.chosen = m.id;
        this.render();
      },
    }, `${m.success ? "✓" : "✗"} trajectory ${m.trajectory}`)));
    const item = episodes.find((m) => m.id === this.chosen);
    if (this.shown !== item.id) this.play(item);
  }

  async play(item) {
    this.shown = item.id;
    clearInterval(this.cursorTimer);
    const kept = item.chunks.filter((c) => c.kept).length;
    this.caption.textContent = `step ${item.step}, task ${item.task} (“${item.instruction}”), trajectory ${item.trajectory}: `
      + `${item.success ? "succeeded" : "failed"}; ${kept} of ${item.chunks.length} chunks back-propagated.`;
    this.strip.replaceChildren(chunkStrip(this.M, item));
    let source;
    try {
      source = await fetchDataUrl(item.url, this.token);
    } catch (err) {
      clear(this.message).append(el("p", { class: "notice notice-error" }, `Could not load the episode: ${err.message}`));
      return;
    }
    if (this.shown !== item.id) return; // another episode was picked meanwhile
    this.image.hidden = false;
    this.image.dataset.mediaId = String(item.id);
    this.image.onload = () => this.follow(item);
    this.image.src = source;
  }

  /** Outline the chunk on screen: chunk k shows from k * frame_ms, looping with the GIF. */
  follow(item) {
    const cells = [...this.strip.querySelectorAll(".media-chunk")];
    const started = performance.now();
    const period = item.frame_ms * cells.length;
    clearInterval(this.cursorTimer);
    const tick = () => {
      const k = Math.floor(((performance.now() - started) % period) / item.frame_ms);
      cells.forEach((cell, i) => cell.classList.toggle("current", i === k));
      this.strip.dataset.current = String(k);
    };
    tick();
    this.cursorTimer = setInterval(tick, Math.max(50, item.frame_ms / 2));
  }
}

/** The panel's credential: the share link's token, else the login token (none: single user). */
export function mediaToken(source) {
  return source.token ?? getToken();
}
