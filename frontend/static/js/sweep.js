// The sweep page (/sweeps/<id>, and read-only without login at /share/sweeps/<token>): per arm
// (one grid point, a run per seed) the mean over seeds with its 95% interval as a band, against
// step and against training wall-clock; a table of arms with final success, costs and what PCM
// bought (ratios to the sweep's plain-GRPO arm, seed by seed); the runs; cancel, add seeds, share.
// Every number comes computed from GET /api/sweeps/<id> (backend/store/sweep_stats.py); the page
// only draws.

import { api, ensureSession } from "./api.js";
import { drawFigure, stepAxis } from "./charts.js";
import { confirmStep } from "./confirm.js";
import { loadContract, metricAxis, metricLabel } from "./contract.js";
import { fmtDuration, fmtPct, fmtRatio, fmtSeconds, isNum } from "./format.js";
import { ShareLinks } from "./sharelinks.js";
import { clear, el, mountNav, notice, poll, progressBar, readQuery, statusBadge, writeQuery } from "./ui.js";

const REFRESH_MS = 4000;
const DASHES = ["solid", "dash", "dot", "dashdot", "longdash", "longdashdot"];

/** Where the page reads from: a signed-in user's sweep, or a share link's. */
async function sweepSource() {
  const [kind, second, third] = location.pathname.split("/").filter(Boolean);
  if (kind !== "share") {
    await ensureSession();
    mountNav();
    return { id: Number(second), call: api, shared: false };
  }
  const token = decodeURIComponent(third);
  mountNav({ minimal: true, note: "shared sweep (read-only)" });
  document.title = "Shared sweep · PCM Lab";
  const call = (path, options = {}) => api(path, { ...options, token, auth: false });
  const { id } = await call(`/api/share/sweeps/${encodeURIComponent(token)}`);
  return { id, call, shared: true };
}

/** "#1f77b4" -> "rgba(31, 119, 180, a)" (any other colour is used as it is). */
function withAlpha(color, alpha) {
  const hex = /^#([0-9a-f]{6})$/i.exec(color || "");
  if (!hex) return color;
  const n = parseInt(hex[1], 16);
  return `rgba(${n >> 16}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

/** An arm as a band: its interval's upper edge, its lower edge filled up to the upper, its mean. */
export function bandTraces(label, color, dash, bands, xOf) {
  const points = bands.map(([step, mean, lo, hi]) => [xOf(step), mean, lo, hi]).filter(([x]) => isNum(x));
  const x = points.map(([px]) => px);
  const edge = { type: "scatter", mode: "lines", x, line: { width: 0, color }, hoverinfo: "skip", showlegend: false, legendgroup: label };
  return [
    { ...edge, name: `${label} upper`, y: points.map(([, , , hi]) => hi) },
    { ...edge, name: `${label} lower`, y: points.map(([, , lo]) => lo), fill: "tonexty", fillcolor: withAlpha(color, 0.18) },
    {
      type: "scatter", mode: points.length < 30 ? "lines+markers" : "lines", name: label, legendgroup: label, x,
      y: points.map(([, mean]) => mean), line: { color, dash, width: 2 },
      customdata: points.map(([, , lo, hi]) => [lo, hi]),
      hovertemplate: "%{y:.4g} [%{customdata[0]:.4g}, %{customdata[1]:.4g}]",
    },
  ];
}

/** " · starting from run #7's policy" (or artifact #12) for a sweep whose runs start from a
 * policy (`start_from`), else "". */
export function startOf(ref) {
  if (!ref) return "";
  return ref.run ? ` · starting from run #${ref.run}'s policy` : ` · starting from policy artifact #${ref.artifact}`;
}

const armLabel = (arm) => Object.entries(arm.values).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(", ") || "all runs";

/** `[mean, lo, hi, n]` as "mean ± half-width". */
function withInterval(interval, format) {
  if (!interval) return "—";
  const [mean, , hi, n] = interval;
  return n > 1 ? `${format(mean)} ± ${format(hi - mean).replace(/[×%]$/, "")}` : format(mean);
}

export async function mountSweepPage() {
  const source = await sweepSource();
  const M = await loadContract();
  const message = document.getElementById("sweep-message");
  const view = { metric: M.ROLLOUT_SUCCESS, ...readQuery() };
  let data = null;

  const styleOf = (arms) => {
    const style = new Map();
    arms.forEach((arm, i) => {
      const sameMethod = arms.filter((other) => other.selector === arm.selector);
      style.set(i, { color: M.methodColor(arm.selector), dash: DASHES[sameMethod.indexOf(arm) % DASHES.length] });
    });
    return style;
  };

  const drawPair = (name, stepNode, wallNode, style) => {
    const yaxis = { title: { text: metricLabel(name) }, ...metricAxis(name) };
    const stepTraces = [];
    const wallTraces = [];
    data.arms.forEach((arm, i) => {
      const bands = arm.series[name] || [];
      const seconds = new Map(arm.wall_clock.map(([step, mean]) => [step, mean]));
      const { color, dash } = style.get(i);
      stepTraces.push(...bandTraces(armLabel(arm), color, dash, bands, (step) => step));
      wallTraces.push(...bandTraces(armLabel(arm), color, dash, bands, (step) => seconds.get(step) ?? null));
    });
    const steps = data.arms.flatMap((arm) => (arm.series[name] || []).map(([step]) => step));
    drawFigure(document.getElementById(stepNode), stepTraces, { yaxis, height: 320, hovermode: "closest", xaxis: stepAxis(steps) });
    drawFigure(document.getElementById(wallNode), wallTraces,
      { yaxis, height: 320, hovermode: "closest", xaxis: { title: { text: "training seconds (mean over seeds)" } } });
  };

  const renderArms = (style) => {
    const headers = ["arm", "seeds", "eval success (final)", "update s / step", "training time",
      "update time vs GRPO", "step time vs GRPO", "training time vs GRPO", "kept fraction", "runs"];
    const ratio = (arm, key) => (arm.baseline === null ? "no GRPO arm"
      : data.arms[arm.baseline] === arm ? "baseline" : withInterval(arm.ratios[key], fmtRatio));
    const rows = data.arms.map((arm, i) => {
      const runs = data.run_details.filter((r) => arm.runs.includes(r.id));
      const done = runs.filter((r) => r.status === "succeeded").length;
      return el("tr", { "data-arm": i },
        el("th", { scope: "row", class: "run-cell" },
          el("span", { class: "swatch", style: { background: style.get(i).color }, "aria-hidden": "true" }),
          el("span", {}, armLabel(arm)), el("div", { class: "run-cell-meta" }, el("code", {}, arm.selector || "mixed"))),
        el("td", { class: "num", "data-col": "seeds" }, `${arm.seeds.length} (${done} done)`),
        el("td", { class: "num", "data-col": "success" }, withInterval(arm.costs.success_final, fmtPct)),
        el("td", { class: "num", "data-col": "update" }, withInterval(arm.costs.update_mean_s, fmtSeconds)),
        el("td", { class: "num", "data-col": "training" }, withInterval(arm.costs.training_seconds, fmtDuration)),
        el("td", { class: "num", "data-col": "update-ratio" }, ratio(arm, "update_mean_s")),
        el("td", { class: "num", "data-col": "step-ratio" }, ratio(arm, "step_mean_s")),
        el("td", { class: "num", "data-col": "training-ratio" }, ratio(arm, "training_seconds")),
        el("td", { class: "num" }, withInterval(arm.costs.kept_fraction_mean, fmtPct)),
        el("td", {}, ...arm.runs.map((id, k) => runLink(id, `s${arm.seeds[k]}`))));
    });
    const note = data.arms.some((arm) => arm.baseline !== null)
      ? `Ratios divide each seed's run by the ${M.selectors.baseline} (plain GRPO) arm's run of the same seed `
        + "(the arm sharing most grid values), then average over seeds: below 1× = cheaper. ± is the half-width of the 95% interval."
      : `No arm uses selector ${M.selectors.baseline} (plain GRPO), so there are no ratios. ± is the half-width of the 95% interval.`;
    clear(document.getElementById("sweep-arms")).append(
      el("div", { class: "table-scroll" }, el("table", { class: "table", id: "arms-table" },
        el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", { scope: "col" }, h)))), el("tbody", {}, rows))),
      el("p", { class: "help" }, note));
  };

  const runLink = (id, text) => (source.shared ? el("span", { class: "run-ref" }, `#${id} ${text} `)
    : el("a", { href: `/runs/${id}`, class: "run-ref" }, `#${id} ${text} `));

  const renderRuns = () => {
    const seedOf = new Map(data.arms.flatMap((arm) => arm.runs.map((id, k) => [id, arm.seeds[k]])));
    clear(document.getElementById("sweep-runs")).append(el("div", { class: "table-scroll" }, el("table", { class: "table", id: "sweep-runs-table" },
      el("thead", {}, el("tr", {}, ...["run", "seed", "status", "progress"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, data.run_details.map((r) => el("tr", { "data-run-id": r.id },
        el("td", {}, source.shared ? `#${r.id} ${r.name}` : el("a", { href: `/runs/${r.id}` }, `#${r.id} ${r.name}`)),
        el("td", { class: "num" }, String(seedOf.get(r.id))),
        el("td", {}, statusBadge(r.status)),
        el("td", {}, progressBar(r.steps_done, r.steps_total))))))));
  };

  const renderHeader = () => {
    const grid = Object.entries(data.grid).map(([k, values]) => `${k} ∈ {${values.map((v) => JSON.stringify(v)).join(", ")}}`);
    document.title = `${data.name} · sweep · PCM Lab`;
    clear(document.getElementById("sweep-header")).append(
      el("h1", { id: "sweep-title" }, data.name, el("span", { class: "muted run-id" }, ` sweep #${data.id}`)),
      el("p", { id: "sweep-recipe" }, `${data.preset ? `preset ${data.preset}` : "a whole config"}${startOf(data.start_from)}`
        + ` · grid ${grid.join(" × ") || "(none)"} · seeds ${data.seeds.join(", ")}`
        + ` · ${data.arms.length} arms × ${data.seeds.length} seeds = ${data.runs.length} runs`));
  };

  const render = () => {
    const style = styleOf(data.arms);
    renderHeader();
    renderArms(style);
    renderRuns();
    drawPair(M.EVAL_SUCCESS, "sweep-eval-step", "sweep-eval-wall", style);
    document.getElementById("sweep-metric-title").textContent = `${view.metric} vs training step`;
    drawPair(view.metric, "sweep-metric-step", "sweep-metric-wall", style);
    actions?.update(data.run_details.some((r) => M.statuses.cancellable.includes(r.status)));
  };

  const load = async () => {
    try {
      data = await source.call(`/api/sweeps/${source.id}`);
      render();
    } catch (err) {
      notice(message, `Could not load this sweep: ${err.message}`, "error");
    }
  };

  const metric = el("select", { id: "sweep-metric" });
  metric.addEventListener("change", () => {
    view.metric = metric.value;
    writeQuery(view);
    render();
  });
  const actions = source.shared ? null : sweepActions(source, message, load);
  await load();
  if (!data) return;
  const names = Object.keys(data.arms[0]?.series || {}).filter((name) => name !== M.EVAL_SUCCESS);
  metric.append(...names.map((name) => el("option", { value: name }, name)));
  if (names.includes(view.metric)) metric.value = view.metric;
  else view.metric = metric.value;
  clear(document.getElementById("sweep-controls")).append(
    el("div", { class: "field" }, el("label", { for: "sweep-metric" }, "second curve"), metric));
  render();
  poll(load, REFRESH_MS, () => data && data.run_details.some((r) => M.isActive(r.status)));
}

/** Cancel (asked once), add seeds and share: for a signed-in user who may change the sweep. */
function sweepActions(source, message, reload) {
  const base = `/api/sweeps/${source.id}`;
  const box = document.getElementById("sweep-actions");
  const cancel = el("button", { type: "button", class: "btn btn-danger", id: "sweep-cancel" }, "Cancel sweep");
  const confirm = confirmStep({
    id: "sweep-cancel-confirm",
    question: "Cancel every unfinished run of this sweep?",
    confirmLabel: "Cancel the runs",
    keepLabel: "Keep them",
    returnFocus: () => cancel,
    onConfirm: async () => {
      try {
        const { cancelled } = await api(`${base}/cancel`, { method: "POST" });
        notice(message, `Cancel requested for ${cancelled.length} run(s).`, "ok");
        await reload();
      } catch (err) {
        notice(message, `Cancel failed: ${err.message}`, "error");
      }
    },
  });
  cancel.addEventListener("click", () => confirm.ask());
  const seeds = el("input", { id: "sweep-more-seeds", type: "text", placeholder: "e.g. 2, 3", inputmode: "numeric",
    "aria-label": "seeds to add", style: { width: "8rem" } });
  const add = el("button", { type: "button", class: "btn", id: "sweep-add-seeds" }, "Add seeds");
  add.addEventListener("click", async () => {
    const parsed = seeds.value.split(/[\s,]+/).filter(Boolean).map(Number);
    try {
      const { runs } = await api(`${base}/seeds`, { method: "POST", body: { seeds: parsed } });
      notice(message, `Added ${runs.length} run(s): seeds ${parsed.join(", ")} in every arm.`, "ok");
      seeds.value = "";
      await reload();
    } catch (err) {
      notice(message, `Could not add seeds: ${err.message}`, "error");
    }
  });
  const share = new ShareLinks({ call: api, base, message });
  const row = { display: "flex", gap: "0.5rem", alignItems: "center", flexWrap: "wrap" };
  box.append(el("div", { style: row }, cancel, seeds, add, share.button, share.url), confirm.node, share.list);
  share.refresh().catch(() => null);
  return {
    /** The cancel button only while some run can still be cancelled. */
    update: (cancellable) => {
      cancel.hidden = !cancellable;
    },
  };
}
