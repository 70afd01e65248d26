// The runs page: a filterable, sortable table whose view lives in the URL (copy the address to
// share it), refreshed while runs are active; pick several and compare them. Search by text (names
// and notes), tag and config values (`pcm.budget=2 pcm.selector=pcm`: every one must hold).
// `?clone=ID` opens the launch form filled from run ID, to launch its clone.

import { api, ensureSession } from "./api.js";
import { fmtAgo, fmtPct, fmtSeconds } from "./format.js";
import { mountLaunchForm } from "./launch.js";
import { loadContract } from "./contract.js";
import { clear, el, mountNav, notice, poll, progressBar, readQuery, statusBadge, waitingNote, writeQuery } from "./ui.js";

const PAGE_SIZE = 50;
const FAST_REFRESH_MS = 2500; // while something is queued or running
const SLOW_REFRESH_MS = 15000; // otherwise, to pick up runs launched elsewhere
const FILTERS = ["q", "config", "tag", "status", "selector", "env", "owner", "lab"];

/** The config filter box: "pcm.budget=2 pcm.selector=pcm" -> one `config` query value each. */
const configFilters = (text) => (text || "").split(/\s+/).filter(Boolean);

/** Columns: key, header, how to render a run, and the server sort key if sortable. */
function columns(M, labNames) {
  return [
    { key: "status", title: "status", sort: "status", cell: (r) => [statusBadge(r.status), waitingNote(r)] },
    { key: "name", title: "name", sort: "name", cell: (r) => [el("a", { href: `/runs/${r.id}` }, r.name),
      ...(r.tags || []).map((t) => el("span", { class: "tag", "data-tag": t }, t))] },
    { key: "selector", title: "selector", cell: (r) => el("code", {}, r.selector) },
    { key: "env", title: "env", cell: (r) => r.env_name },
    { key: "owner", title: "owner", cell: (r) => r.owner },
    { key: "lab", title: "lab", cell: (r) => labNames.get(r.lab_id) ?? (r.lab_id ?? "—") },
    { key: "steps", title: "steps", sort: "steps_done", cell: (r) => progressBar(r.steps_done, r.steps_total) },
    { key: "train", title: "train success", num: true, cell: (r) => fmtPct(r.summary?.[M.ROLLOUT_SUCCESS]) },
    { key: "eval", title: "eval success", num: true, cell: (r) => fmtPct(r.summary?.[M.EVAL_SUCCESS]) },
    { key: "kept", title: "kept fraction", num: true, cell: (r) => fmtPct(r.summary?.[M.PCM_KEPT_FRACTION]) },
    { key: "update", title: "mean update s", num: true, cell: (r) => fmtSeconds(r.summary?.mean_update_s ?? r.summary?.[M.TIME_UPDATE]) },
    { key: "created", title: "created", sort: "created_at", cell: (r) => el("time", { datetime: r.created_at, title: r.created_at }, fmtAgo(r.created_at)) },
  ];
}

export async function mountRunsPage() {
  await ensureSession();
  mountNav();
  const M = await loadContract();
  const labs = await api("/api/labs").catch(() => []);
  const labNames = new Map(labs.map((l) => [l.id, l.name]));
  const cols = columns(M, labNames);
  const state = { sort: "-created_at", offset: 0, ...readQuery() };
  state.offset = Number(state.offset) || 0;
  const selected = new Set();
  let runs = [];
  let count = 0;

  const table = document.getElementById("runs-table");
  const message = document.getElementById("runs-message");
  const compareButton = document.getElementById("compare-selected");
  const pager = document.getElementById("runs-pager");
  buildFilters(document.getElementById("runs-filters"), M, state, labs, () => {
    state.offset = 0;
    refresh();
  });

  const saveView = () => writeQuery({
    ...Object.fromEntries(FILTERS.map((k) => [k, state[k]])),
    clone: state.clone, // until the clone is launched (the launch form reads it)
    sort: state.sort === "-created_at" ? "" : state.sort, // defaults stay out of the URL
    offset: state.offset || "",
  });

  const updateCompare = () => {
    compareButton.disabled = selected.size < 1;
    compareButton.textContent = `Compare selected (${selected.size})`;
  };
  compareButton.addEventListener("click", () => location.assign(`/compare?ids=${[...selected].join(",")}`));

  const render = () => {
    // Keep keyboard focus on the same control across a refresh.
    const focusKey = document.activeElement?.dataset?.focusKey;
    const sortKey = state.sort.replace(/^-/, "");
    const desc = state.sort.startsWith("-");
    const head = el("tr", {}, el("th", { scope: "col" }, el("span", { class: "sr-only" }, "select")),
      ...cols.map((c) => {
        const sorted = c.sort === sortKey;
        const th = el("th", { scope: "col", class: c.num ? "num" : null,
          "aria-sort": sorted ? (desc ? "descending" : "ascending") : null });
        if (!c.sort) {
          th.append(c.title);
          return th;
        }
        th.append(el("button", { type: "button", class: "sort-button", "data-focus-key": `sort-${c.key}`,
          onclick: () => {
            state.sort = sorted && !desc ? `-${c.sort}` : c.sort;
            refresh();
          } }, c.title, sorted ? (desc ? " ▼" : " ▲") : ""));
        return th;
      }));
    const body = runs.map((r) => el("tr", { "data-run-id": r.id, "data-status": r.status },
      el("td", {}, el("input", { type: "checkbox", "aria-label": `select run ${r.name}`, "data-focus-key": `sel-${r.id}`,
        class: "run-select", checked: selected.has(r.id), onchange: (e) => {
          if (e.target.checked) selected.add(r.id);
          else selected.delete(r.id);
          updateCompare();
        } })),
      ...cols.map((c) => el("td", { class: c.num ? "num" : null, "data-col": c.key }, c.cell(r)))));
    clear(table).append(el("thead", {}, head), el("tbody", {}, body));
    if (!runs.length) notice(message, count ? "No runs on this page." : "No runs match. Launch one above.");
    else clear(message);
    renderPager();
    updateCompare();
    if (focusKey) table.querySelector(`[data-focus-key="${focusKey}"]`)?.focus();
  };

  const renderPager = () => {
    const from = count ? state.offset + 1 : 0;
    const to = Math.min(count, state.offset + PAGE_SIZE);
    clear(pager).append(
      el("span", {}, `${from}–${to} of ${count} runs`),
      el("button", { type: "button", class: "btn", disabled: state.offset <= 0, onclick: () => {
        state.offset = Math.max(0, state.offset - PAGE_SIZE);
        refresh();
      } }, "Previous"),
      el("button", { type: "button", class: "btn", disabled: to >= count, onclick: () => {
        state.offset += PAGE_SIZE;
        refresh();
      } }, "Next"));
  };

  async function refresh() {
    saveView();
    const query = { sort: state.sort, limit: PAGE_SIZE, offset: state.offset };
    for (const k of FILTERS) query[k] = state[k];
    query.config = configFilters(state.config);
    try {
      const answer = await api("/api/runs", { query });
      runs = answer.data;
      count = answer.count;
      render();
    } catch (err) {
      runs = [];
      count = 0;
      render();
      notice(message, `Could not load runs: ${err.message}`, "error");
    }
  }

  await refresh();
  const launchPanel = document.getElementById("launch-panel");
  if (!count || state.launch || state.clone) launchPanel.open = true;
  if (state.clone) launchPanel.scrollIntoView();
  mountLaunchForm(document.getElementById("launch-container"), { cloneOf: state.clone }).catch((err) =>
    notice(document.getElementById("launch-container"), `Could not build the launch form: ${err.message}`, "error"));

  // Poll fast while something is active, slowly otherwise (new runs from other people).
  let lastFast = 0;
  poll(async () => {
    const fast = runs.some((r) => M.isActive(r.status));
    if (fast || Date.now() - lastFast > SLOW_REFRESH_MS) {
      lastFast = Date.now();
      await refresh();
    }
  }, FAST_REFRESH_MS);
}

function buildFilters(form, M, state, labs, onChange) {
  const select = (id, label, options, key) => {
    const s = el("select", { id, name: key }, el("option", { value: "" }, "any"),
      ...options.map(([value, text]) => el("option", { value }, text)));
    s.value = state[key] || "";
    s.addEventListener("change", () => {
      state[key] = s.value;
      onChange();
    });
    return el("div", { class: "field" }, el("label", { for: id }, label), s);
  };
  const text = (id, label, key, type = "text") => {
    const input = el("input", { id, name: key, type, value: state[key] || "", placeholder: label });
    let timer = null;
    input.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        state[key] = input.value.trim();
        onChange();
      }, 300); // debounce typing
    });
    return el("div", { class: "field" }, el("label", { for: id }, label), input);
  };
  clear(form).append(
    text("filter-q", "search names and notes", "q", "search"),
    text("filter-config", "config values (pcm.budget=2 …)", "config", "search"),
    text("filter-tag", "tag", "tag", "search"),
    select("filter-status", "status", M.statuses.all.map((s) => [s, s]), "status"),
    select("filter-selector", "selector", M.selectors.names.map((s) => [s, s]), "selector"),
    text("filter-env", "env", "env"),
    text("filter-owner", "owner", "owner"),
    select("filter-lab", "lab", labs.map((l) => [String(l.id), l.name]), "lab"),
  );
  form.addEventListener("submit", (e) => e.preventDefault());
}
