// The launch form: rendered from GET /api/config-schema, filled from a preset, sent as
// {preset, overrides} (or a whole config), with the server's 422 messages shown next to the
// fields they name. "GRPO vs PCM pair" sends the same config twice, differing only in
// pcm.selector (the contract's baseline, plain GRPO, and its default, PCM), and opens the comparison.

import { api, ApiError } from "./api.js";
import { loadContract } from "./contract.js";
import { nest, parseOverrideLines, SchemaForm, valueAt } from "./schemaform.js";
import { el } from "./ui.js";

const SELECTOR_KEY = "pcm.selector";

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

/** The dotted config path a 422 `loc` points at ("" for the whole request / config). */
export function pathOfLoc(loc = []) {
  const parts = loc[0] === "body" ? loc.slice(1) : loc;
  if (parts[0] === "overrides") return String(parts[1] ?? "");
  if (parts[0] === "config") return parts.slice(1).join(".");
  return parts.join(".");
}

export async function mountLaunchForm(container) {
  const [M, schema, presets, labs] = await Promise.all([
    loadContract(),
    api("/api/config-schema"),
    api("/api/presets"),
    api("/api/labs").catch(() => []), // labs are optional here: the server picks a default lab
  ]);
  const form = new SchemaForm(schema);
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
  const extraError = el("span", { class: "field-error", role: "alert", id: "launch-overrides-err" });
  // A run starts from a policy by reference (the server resolves it, never a path from here).
  const startRun = el("input", { id: "launch-start-run", type: "number", min: 1, step: 1, inputmode: "numeric",
    placeholder: "run id", "aria-describedby": "launch-start-help launch-start-err" });
  const startError = el("span", { class: "field-error", role: "alert", id: "launch-start-err" });
  const formError = el("div", { class: "form-error", role: "alert", id: "launch-error" });
  const submit = el("button", { type: "submit", class: "btn btn-primary", id: "launch-submit" }, "Launch run");
  const pair = el("button", { type: "button", class: "btn", id: "launch-pair",
    title: "two runs, same config and seed; pcm.selector = full (GRPO) and pcm" }, "Launch GRPO vs PCM pair");

  const node = el("form", { id: "launch-form", class: "launch-form", novalidate: true, "aria-label": "launch a run" },
    el("div", { class: "launch-top field-grid" },
      el("div", { class: "field" }, el("label", { for: "launch-preset" }, "preset"), presetSelect,
        el("small", { class: "help" }, "fills the form; your edits are sent as overrides"), presetError),
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

  // The values the chosen preset gives, read back through the form so they compare exactly.
  let baseline = {};
  let baselineVariants = {};
  const applyPreset = () => {
    const preset = presets.find((p) => p.name === presetSelect.value);
    form.setValues(preset ? preset.config : {});
    baseline = form.read().values;
    baselineVariants = form.variants();
  };
  presetSelect.addEventListener("change", applyPreset);
  // Start from a PCM preset on the default env (the built-in suite runs anywhere; LIBERO needs its extra).
  const onDefaultEnv = presets.filter((p) => form.usesDefaultVariants(p.config));
  const initial = onDefaultEnv.find((p) => valueAt(p.config, SELECTOR_KEY) === M.selectors.default) || onDefaultEnv[0];
  presetSelect.value = initial ? initial.name : "";
  applyPreset();

  const clearErrors = () => {
    form.clearErrors();
    for (const e of [formError, presetError, extraError, startError]) e.textContent = "";
  };

  const showProblem = (path, message, extraKeys) => {
    if (path === "preset") presetError.textContent = message;
    else if (path.startsWith("start_from")) startError.textContent = message;
    else if (path && form.showError(path, message)) return;
    else if (path && extraKeys.includes(path)) {
      extraError.textContent = `${path}: ${message}`;
      extra.closest("details").open = true;
    } else formError.append(el("p", {}, path ? `${path}: ${message}` : message));
  };

  /** The request bodies, or null after showing what is wrong locally. */
  const buildBody = () => {
    clearErrors();
    const { values, errors } = form.read();
    let extraValues = {};
    try {
      extraValues = parseOverrideLines(extra.value);
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
      return await api("/api/runs", { method: "POST", body });
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
}
