// The launch form's "sweep" section: the form's config (preset + overrides, or a whole config)
// launched as a grid of runs — one per combination of the grid's values x seed — through
// POST /api/sweeps, then the sweep page opens. Grid lines are `dotted.key = v1, v2` (or a JSON
// list: `env.tasks = [[0], [1]]`); the server's 422s about the grid or the seeds are shown here,
// the rest where the launch form shows them.

import { api, ApiError } from "./api.js";
import { pathOfLoc } from "./launch.js";
import { overrideLineNumbers, parseOverrideLines } from "./schemaform.js";
import { el } from "./ui.js";

/** One value as typed: JSON where it parses (numbers, true, "text"), else the text itself. */
function parseValue(raw) {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

/** `"pcm.budget = 1, 2\npcm.selector = full, pcm"` -> `{"pcm.budget": [1, 2], "pcm.selector": ["full", "pcm"]}`. */
export function parseGrid(text) {
  const grid = {};
  for (const [key, value] of Object.entries(parseOverrideLines(text))) {
    if (Array.isArray(value)) grid[key] = value; // a JSON list is the list of values
    else if (typeof value === "string") grid[key] = value.split(",").map((s) => s.trim()).filter(Boolean).map(parseValue);
    else grid[key] = [value];
  }
  return grid;
}

/** `"0, 1 2"` -> `[0, 1, 2]`; throws on anything that is not a whole number >= 0. */
export function parseSeeds(text) {
  const parts = text.split(/[\s,]+/).filter(Boolean);
  if (!parts.length) throw new Error("give at least one seed, e.g. 0, 1");
  return parts.map((part) => {
    if (!/^\d+$/.test(part)) throw new Error(`'${part}' is not a seed (a whole number >= 0)`);
    return Number(part);
  });
}

/**
 * Append the sweep section to the launch form `node`. `buildBody()` gives the run request the
 * form would send ({body, extraKeys}, or null after showing local errors), `showProblem(path,
 * message, extraKeys)` shows a server error where the form shows it, `busy(on)` locks the form.
 */
export function mountSweepSection(node, { buildBody, showProblem, busy }) {
  const grid = el("textarea", { id: "sweep-grid", rows: 3, spellcheck: "false",
    placeholder: "pcm.selector = full, pcm\npcm.budget = 1, 2", "aria-describedby": "sweep-grid-help sweep-grid-err" });
  const gridError = el("div", { class: "field-error", role: "alert", id: "sweep-grid-err" });
  const seeds = el("input", { id: "sweep-seeds", type: "text", value: "0, 1", inputmode: "numeric",
    "aria-describedby": "sweep-seeds-help sweep-seeds-err" });
  const seedsError = el("span", { class: "field-error", role: "alert", id: "sweep-seeds-err" });
  const launch = el("button", { type: "button", class: "btn btn-primary", id: "sweep-launch" }, "Launch sweep");
  const section = el("details", { class: "section-toggle", id: "sweep-section" },
    el("summary", {}, "sweep: a grid of runs over values x seeds"),
    el("div", { class: "field" },
      el("label", { for: "sweep-grid" }, "grid, one dotted.key = comma-separated values per line"), grid,
      el("small", { class: "help", id: "sweep-grid-help" },
        "every combination is an arm; the form's values (and extra overrides) apply to every run"),
      gridError),
    el("div", { class: "field" },
      el("label", { for: "sweep-seeds" }, "seeds"), seeds,
      el("small", { class: "help", id: "sweep-seeds-help" },
        "train.seed of each arm's runs: the same seed in every arm (paired), so arms differ only by the grid"),
      seedsError),
    el("div", { class: "actions" }, launch));
  node.append(section);

  const problem = (box, text) => box.append(el("p", {}, text));
  launch.addEventListener("click", async () => {
    gridError.textContent = seedsError.textContent = "";
    const built = buildBody();
    if (!built) return;
    const parsed = {};
    for (const [key, parse, input, box] of [["grid", parseGrid, grid, gridError], ["seeds", parseSeeds, seeds, seedsError]]) {
      try {
        parsed[key] = parse(input.value);
      } catch (err) {
        problem(box, err.message);
        return;
      }
    }
    const body = { ...built.body, ...parsed };  // with the form's start_from: every run starts there
    busy(true);
    try {
      const sweep = await api("/api/sweeps", { method: "POST", body });
      location.assign(`/sweeps/${sweep.id}`);
    } catch (err) {
      busy(false);
      if (!(err instanceof ApiError && err.status === 422 && Array.isArray(err.detail))) {
        problem(gridError, err.message);
        return;
      }
      const lines = overrideLineNumbers(grid.value);
      for (const d of err.detail) {
        const [, part, key] = d.loc || [];
        if (part === "grid") problem(gridError, key && lines[key] ? `line ${lines[key]}, ${key}: ${d.msg}` : d.msg);
        else if (part === "seeds") problem(seedsError, d.msg);
        else showProblem(pathOfLoc(d.loc), d.msg, built.extraKeys);
      }
    }
  });
}
