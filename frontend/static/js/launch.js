// The launch form: rendered from GET /api/config-schema, its values the chosen preset's (or, to
// clone a run, that run's config), sent as {preset, overrides} (or a whole config; a clone as
// POST /api/runs/{id}/clone {overrides}), with the server's 422 messages shown beside the key that
// caused them: the line of the overrides box it was typed on, or the form field. A key in the
// overrides box also shows its value in the form field it sets. "GRPO vs PCM pair" sends the
// same config twice, differing only in pcm.selector (the contract's baseline, plain GRPO, and its
// default, PCM), and opens the comparison.

import { api, ApiError } from "./api.js";
import { loadContract } from "./contract.js";
import { nest, overrideLineNumbers, parseOverrideLines, SchemaForm, valueAt } from "./schemaform.js";
import { mountSweepSection } from "./sweepform.js";
import { el } from "./ui.js";

const SELECTOR_KEY = "pcm.selector";
/** Shown first, outside their collapsed sections: what most launches change. */
const COMMON_FIELDS = ["name", "env.name", "env.tasks", SELECTOR_KEY, "pcm.budget", "train.steps", "train.seed",
  "grpo.lr", "grpo.group_size", "grpo.groups_per_step", "eval.every", "policy.init"];

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

/** The dotted config path a 422 `loc` points at ("" for the whole request / config). */
export function pathOfLoc(loc = []) {
  const parts = loc[0] === "body" ? loc.slice(1) : loc;
  if (parts[0] === "overrides") return String(parts[1] ?? "");
  if (parts[0] === "config") return parts.slice(1).join(".");
  return parts.join(".");
}

/** `cloneOf`: a run id; the form then starts from that run's config and launches its clone. */
export async function mountLaunchForm(container, { cloneOf = null } = {}) {
  const [M, schema, presets, labs, source] = await Promise.all([
    loadContract(),
    api("/api/config-schema"),
    api("/api/presets"),
    api("/api/labs").catch(() => []), // labs are optional here: the server picks a default lab
    cloneOf ? api(`/api/runs/${encodeURIComponent(cloneOf)}`) : null,
  ]);
  const form = new SchemaForm(schema, { common: COMMON_FIELDS });
  const presetSelect = el("select", { id: "launch-preset", name: "preset" },
    el("option", { value: "" }, "(none: schema defaults)"),
    ...presets.map((p) => el("option", { value: p.name }, p.name)));
  const presetError = el("span", { class: "field-error", role: "alert", id: "launch-preset-err" });
  const labSelect = el("select", { id: "launch-lab", name: "lab_id" },
    el("option", { value: "" }, "(my default lab)"),
    ...labs.map((lab) => el("option", { value: lab.id }, lab.name)));
  const visibility = el("select", { id: "launch-visibility", name: "visibility" },
    ...["lab", "private", "public"].map((v) => el("option", { value: v }, v)));
  const extra = el("textarea", { id: "launch-overrides", rows: 4, spellcheck: "false",
    placeholder: "pcm.budget=4\ntrain.steps=20", "aria-describedby": "launch-overrides-help launch-overrides-err" });
  const extraError = el("div", { class: "field-error", role: "alert", id: "launch-overrides-err" });
  // A run starts from a policy by reference (the server resolves it, never a path from here).
  const startRun = el("input", { id: "launch-start-run", type: "number", min: 1, step: 1, inputmode: "numeric",
    placeholder: "run id", "aria-describedby": "launch-start-help launch-start-err" });
  const startError = el("span", { class: "field-error", role: "alert", id: "launch-start-err" });
  const formError = el("div", { class: "form-error", role: "alert", id: "launch-error" });
  const submit = el("button", { type: "submit", class: "btn btn-primary", id: "launch-submit" }, cloneOf ? "Launch clone" : "Launch run");
  const pair = el("button", { type: "button", class: "btn", id: "launch-pair",
    title: "two runs, same config and seed; pcm.selector = full (GRPO) and pcm" }, "Launch GRPO vs PCM pair");

  const sourceField = source
    ? el("div", { class: "field", id: "launch-clone-of" }, el("span", { class: "label" }, "cloning"),
      el("a", { href: `/runs/${source.id}` }, `${source.name} #${source.id}`),
      el("small", { class: "help" }, "its config fills the form; your edits are sent as overrides of it · ",
        el("a", { href: "/?launch=1" }, "start from a preset instead")))
    : el("div", { class: "field" }, el("label", { for: "launch-preset" }, "preset"), presetSelect,
      el("small", { class: "help" }, "its values fill the form; your edits are sent as overrides"), presetError);
  const node = el("form", { id: "launch-form", class: "launch-form", novalidate: true,
    "aria-label": source ? `clone run ${source.name}` : "launch a run" },
    el("div", { class: "launch-top field-grid" },
      sourceField,
      el("div", { class: "field" }, el("label", { for: "launch-lab" }, "lab"), labSelect),
      el("div", { class: "field" }, el("label", { for: "launch-visibility" }, "visibility"), visibility),
      el("div", { class: "field" }, el("label", { for: "launch-start-run" }, "start from run"), startRun,
        el("small", { class: "help", id: "launch-start-help" }, "its exported policy; empty: the config's own start"),
        startError)),
    formError,
    form.node,
    el("details", { class: "section-toggle" }, el("summary", {}, "extra overrides"),
      el("div", { class: "field" },
        el("label", { for: "launch-overrides" }, "overrides, one dotted.key=value per line (like pcm train --set)"),
        extra,
        el("small", { class: "help", id: "launch-overrides-help" }, "applied on top of the form; values are JSON (numbers, true, [1, 2]) or plain text"),
        extraError)),
    el("div", { class: "actions" }, submit, pair));
  container.replaceChildren(node);

  // The values the form starts from (the preset's or the cloned run's), read back through the
  // form so they compare exactly: what differs is sent as an override.
  let baseline = {};
  let baselineVariants = {};
  const setBaseline = (config) => {
    form.setValues(config);
    baseline = form.read().values;
    baselineVariants = form.variants();
  };
  const applyPreset = () => {
    const preset = presets.find((p) => p.name === presetSelect.value);
    setBaseline(preset ? preset.config : {});
  };
  presetSelect.addEventListener("change", applyPreset);
  if (source) {
    setBaseline(source.config);
    form.setField(form.fields.get("name"), `${source.name} (clone)`.slice(0, 200));
    labSelect.value = source.lab_id ?? "";
    visibility.value = source.visibility;
  } else {
    // Start from a PCM preset on the default env (the built-in suite runs anywhere; LIBERO needs its extra).
    const onDefaultEnv = presets.filter((p) => form.usesDefaultVariants(p.config));
    const initial = onDefaultEnv.find((p) => valueAt(p.config, SELECTOR_KEY) === M.selectors.default) || onDefaultEnv[0];
    presetSelect.value = initial ? initial.name : "";
    applyPreset();
  }

  const clearErrors = () => {
    form.clearErrors();
    for (const e of [formError, presetError, extraError, startError]) e.textContent = "";
    extra.removeAttribute("aria-invalid");
  };

  /** A problem of a key typed in the overrides box, shown under the box with its line. */
  const showExtraProblem = (key, message) => {
    const line = overrideLineNumbers(extra.value)[key];
    extraError.append(el("p", { class: "override-problem", "data-key": key },
      line ? `line ${line}, ${key}: ${message}` : `${key}: ${message}`));
    extra.setAttribute("aria-invalid", "true");
    extra.closest("details").open = true;
  };

  // The key that caused a problem is where it is shown: the overrides box line it was typed on
  // (the box wins over the form: it is applied last), else the form field, else the top.
  const showProblem = (path, message, extraKeys) => {
    if (path === "preset") presetError.textContent = message;
    else if (path.startsWith("start_from")) startError.textContent = message;
    else if (path && extraKeys.includes(path)) showExtraProblem(path, message);
    else if (path && form.showError(path, message)) return;
    else formError.append(el("p", {}, path ? `${path}: ${message}` : message));
  };

  /** Show each override's value in the form field it sets (and the fields' own values again
   * when a key leaves the box). */
  const showOverrides = (overrides) => {
    form.clearOverrides();
    for (const [key, value] of Object.entries(overrides)) form.showOverride(key, value);
  };
  extra.addEventListener("change", () => {
    try {
      showOverrides(parseOverrideLines(extra.value));
    } catch {
      form.clearOverrides(); // a malformed line: buildBody says which
    }
  });

  /** The request bodies, or null after showing what is wrong locally. */
  const buildBody = () => {
    clearErrors();
    form.clearOverrides();
    const { values, errors } = form.read();
    let extraValues = {};
    try {
      extraValues = parseOverrideLines(extra.value);
      showOverrides(extraValues);
    } catch (err) {
      extraError.textContent = err.message;
    }
    for (const [path, message] of Object.entries(errors)) form.showError(path, message);
    if (Object.keys(errors).length || extraError.textContent) {
      formError.textContent = "Fix the marked fields.";
      (form.firstInvalid() || extra).focus();
      return null;
    }
    const name = values.name;
    const body = {
      name,
      visibility: visibility.value,
      ...(labSelect.value ? { lab_id: Number(labSelect.value) } : {}),
      ...(startRun.value ? { start_from: { run: Number(startRun.value) } } : {}),
    };
    if (source) {
      // A clone's overrides: the changed fields, and a section switched to another variant
      // (env: tabletop -> libero) replaced whole, since the run's old keys would not fit it.
      const switched = Object.keys(baselineVariants).filter((path) => !same(form.variants()[path], baselineVariants[path]));
      const inSwitched = (path) => switched.some((section) => path.startsWith(`${section}.`));
      const overrides = {};
      for (const section of switched) {
        const inside = Object.entries(values).filter(([path]) => path.startsWith(`${section}.`));
        overrides[section] = nest(Object.fromEntries(inside.map(([path, v]) => [path.slice(section.length + 1), v])));
      }
      for (const [path, value] of Object.entries(values)) {
        if (path !== "name" && !inSwitched(path) && !same(value, baseline[path])) overrides[path] = value;
      }
      Object.assign(body, { overrides: { ...overrides, ...extraValues } });
      return { body, extraKeys: Object.keys(extraValues) };
    }
    // A preset plus overrides can change values but not drop keys: after switching a section to
    // another variant (env: tabletop -> libero) the preset's old keys would not fit, so send the
    // whole config instead.
    if (presetSelect.value && same(form.variants(), baselineVariants)) {
      const overrides = {};
      for (const [path, value] of Object.entries(values)) {
        if (path !== "name" && !same(value, baseline[path])) overrides[path] = value;
      }
      Object.assign(body, { preset: presetSelect.value, overrides: { ...overrides, ...extraValues } });
    } else {
      Object.assign(body, { config: nest(values), overrides: extraValues });
    }
    return { body, extraKeys: Object.keys(extraValues) };
  };

  const send = async (body, extraKeys) => {
    try {
      return await api(source ? `/api/runs/${source.id}/clone` : "/api/runs", { method: "POST", body });
    } catch (err) {
      if (err instanceof ApiError && err.status === 422 && Array.isArray(err.detail)) {
        for (const d of err.detail) showProblem(pathOfLoc(d.loc), d.msg, extraKeys);
        const target = form.firstInvalid();
        if (target) target.focus();
      } else {
        showProblem("", err.message, extraKeys);
      }
      return null;
    }
  };

  const busy = (on) => {
    for (const b of [submit, pair]) b.disabled = on;
    node.setAttribute("aria-busy", on ? "true" : "false");
  };

  node.addEventListener("submit", async (event) => {
    event.preventDefault();
    const built = buildBody();
    if (!built) return;
    busy(true);
    const run = await send(built.body, built.extraKeys);
    busy(false);
    if (run) location.assign(`/runs/${run.id}`);
  });

  pair.addEventListener("click", async () => {
    const built = buildBody();
    if (!built) return;
    busy(true);
    const ids = [];
    const pairs = [{ suffix: "grpo", selector: M.selectors.baseline }, { suffix: "pcm", selector: M.selectors.default }];
    for (const { suffix, selector } of pairs) {
      const body = {
        ...built.body,
        name: `${built.body.name}-${suffix}`,
        overrides: { ...built.body.overrides, [SELECTOR_KEY]: selector },
      };
      const run = await send(body, built.extraKeys);
      if (!run) break;
      ids.push(run.id);
    }
    busy(false);
    if (ids.length === pairs.length) location.assign(`/compare?ids=${ids.join(",")}`);
    else if (ids.length) formError.append(el("p", {}, `Only run ${ids.join(", ")} was launched; see `, el("a", { href: `/runs/${ids[0]}` }, `run ${ids[0]}`), "."));
  });

  if (!source) mountSweepSection(node, { buildBody, showProblem, busy }); // the same config as a grid x seeds
}
