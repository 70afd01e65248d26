// A form generated from a pydantic JSON schema (RunConfig's): the common fields first, then one
// collapsed fieldset per section, inputs by type and enum, bounds and the schema's default in the
// help text (the values are whatever setValues was given: a preset's or a run's), and a registry
// of fields keyed by dotted path ("pcm.budget") so server errors can be put next to the field
// they name.
//
// A section that is a union of variants told apart by a constant field (env: tabletop | libero,
// each with `name` fixed) gets a variant picker; only the chosen variant's fields are shown and
// read.

import { el } from "./ui.js";

/** Resolve "#/$defs/X" references (and pydantic's allOf-wrapped refs) against the root schema. */
function deref(root, node) {
  let n = node;
  while (n && (n.$ref || (n.allOf && n.allOf.length === 1))) {
    const ref = n.$ref || n.allOf[0].$ref;
    if (!ref) break;
    const target = ref.replace(/^#\//, "").split("/").reduce((acc, key) => acc && acc[key], root);
    n = { ...target, ...Object.fromEntries(Object.entries(n).filter(([k]) => !["$ref", "allOf"].includes(k))) };
  }
  return n;
}

const isObject = (s) => s && s.type === "object" && s.properties;

/** The property every branch fixes to its own constant (the discriminator), if any. */
function discriminatorOf(branches) {
  if (branches.length < 2 || !branches.every(isObject)) return null;
  const first = Object.entries(branches[0].properties).find(([, p]) => p.const !== undefined);
  if (!first) return null;
  const [key] = first;
  return branches.every((b) => b.properties[key] && b.properties[key].const !== undefined) ? key : null;
}

/** What a property needs: {kind, nullable, schema} (+ {discriminator, variants} for unions). */
function classify(root, prop) {
  let schema = deref(root, prop);
  let nullable = false;
  if (schema.anyOf || schema.oneOf) {
    const branches = (schema.anyOf || schema.oneOf).map((b) => deref(root, b));
    const discriminator = discriminatorOf(branches);
    if (discriminator) {
      const variants = branches.map((b) => ({ key: b.properties[discriminator].const, schema: b }));
      return { kind: "variants", nullable: false, schema, discriminator, variants };
    }
    nullable = branches.some((b) => b.type === "null");
    const rest = Object.fromEntries(Object.entries(schema).filter(([k]) => !["anyOf", "oneOf"].includes(k)));
    const kinds = branches.filter((b) => b.type !== "null");
    if (kinds.length > 1 && kinds.every((b) => b.enum || b.type === "integer" || b.type === "number")) {
      // named choices or a number (grpo.micro_batch_chunks: "auto" | "memory" | N): one text field
      const choices = kinds.flatMap((b) => b.enum || []);
      return { kind: "choice", nullable, schema: { ...rest, choices } };
    }
    const main = kinds[0] || {};
    schema = { ...main, ...rest };
  }
  let kind = "text";
  if (schema.const !== undefined) kind = "enum";
  else if (schema.enum) kind = "enum";
  else if (schema.type === "boolean") kind = "bool";
  else if (schema.type === "integer" || schema.type === "number") kind = "number";
  else if (schema.type === "array") kind = "list";
  else if (isObject(schema)) kind = "object";
  return { kind, nullable, schema };
}

const labelOf = (key) => key.replace(/_/g, " ");
const idOf = (path) => `f-${path.replace(/[^A-Za-z0-9]+/g, "-")}`;

function boundsText(schema) {
  const lo = schema.minimum ?? schema.exclusiveMinimum;
  const hi = schema.maximum ?? schema.exclusiveMaximum;
  if (lo === undefined && hi === undefined) return "";
  const left = lo === undefined ? "" : `${lo} ${schema.exclusiveMinimum !== undefined ? "<" : "≤"} `;
  const right = hi === undefined ? "" : ` ${schema.exclusiveMaximum !== undefined ? "<" : "≤"} ${hi}`;
  return `${left}x${right}`;
}

function listItemType(schema) {
  const items = schema.prefixItems ? schema.prefixItems[0] : schema.items;
  return (items && items.type) || "string";
}

/** The value at a dotted path of a nested config (undefined if absent). */
export const valueAt = (config, path) =>
  path.split(".").reduce((acc, k) => (acc && typeof acc === "object" ? acc[k] : undefined), config);

export class SchemaForm {
  /** `common`: dotted paths shown first, outside their (collapsed) sections, in this order. */
  constructor(root, { common = [] } = {}) {
    this.root = root;
    // Every field: {path, input, kind, nullable, schema, error, wrap, variant}; `variant` is
    // {section, key} for a field that belongs to one variant of a union section, else null.
    this.allFields = [];
    this.sections = new Map(); // dotted path of an object section -> {node, error}
    this.unions = new Map(); // dotted path of a union section -> {picker, discriminator, panels}
    this.node = el("div", { class: "schema-form" });
    for (const [key, prop] of Object.entries(root.properties || {})) {
      const c = classify(root, prop);
      if (c.kind === "object" || c.kind === "variants") this.node.append(this.section(key, c, true));
      else this.node.append(this.field(key, c, null));
    }
    this.moveCommon(common);
  }

  /** Move the `common` fields into a block at the top (a variant's field is shown there while
   * its variant is chosen). */
  moveCommon(common) {
    const grid = el("div", { class: "field-grid" });
    for (const path of common) {
      for (const f of this.allFields.filter((field) => field.path === path)) {
        f.common = true;
        f.wrap.querySelector("label").textContent = path.replace(/_/g, " "); // out of its section: the whole path
        grid.append(f.wrap);
      }
    }
    if (!grid.childElementCount) return;
    this.node.prepend(el("fieldset", { class: "form-section common-fields", id: "common-fields" },
      el("legend", {}, "common settings"), grid));
    for (const path of this.unions.keys()) this.showVariant(path);
  }

  /** The fields that count now: shared ones and those of each union's chosen variant. */
  get fields() {
    const active = new Map();
    for (const f of this.allFields) {
      if (!f.variant || this.unions.get(f.variant.section).picker.value === JSON.stringify(f.variant.key)) {
        active.set(f.path, f);
      }
    }
    return active;
  }

  section(path, c, top, variant = null) {
    const fieldset = el("fieldset", { class: "form-section", "data-path": path });
    // A top-level section's visible title is its <summary>; the legend stays for screen readers.
    fieldset.append(el("legend", { class: top ? "sr-only" : null }, labelOf(path.split(".").pop())));
    if (c.schema.description && !top) fieldset.append(el("p", { class: "help" }, c.schema.description));
    if (c.kind === "variants") this.fillUnion(fieldset, path, c);
    else this.fillObject(fieldset, path, c.schema, variant);
    const error = el("p", { class: "field-error", role: "alert" });
    fieldset.append(error);
    const description = c.schema.description || (c.kind === "variants" ? "pick a variant" : "");
    // Top-level sections collapse (the config is long); nested ones stay open inside them.
    const container = top
      ? el("details", { class: "section-toggle", "data-section": path },
        el("summary", {}, labelOf(path), description ? el("span", { class: "muted" }, ` — ${description}`) : null), fieldset)
      : fieldset;
    this.sections.set(path, { node: container, error });
    return container;
  }

  fillObject(fieldset, path, schema, variant, skip = null) {
    const grid = el("div", { class: "field-grid" });
    const nested = [];
    for (const [key, prop] of Object.entries(schema.properties || {})) {
      if (key === skip) continue;
      const c = classify(this.root, prop);
      const child = `${path}.${key}`;
      if (c.kind === "object" || c.kind === "variants") nested.push(this.section(child, c, false, variant));
      else grid.append(this.field(child, c, variant));
    }
    fieldset.append(grid, ...nested);
  }

  fillUnion(fieldset, path, { discriminator, variants }) {
    const pickerPath = `${path}.${discriminator}`;
    const picker = this.field(pickerPath, {
      kind: "enum", nullable: false, schema: { enum: variants.map((v) => v.key), description: "variant of this section" },
    }, null);
    const panels = new Map();
    for (const v of variants) {
      const panel = el("div", { class: "variant-panel", "data-variant": v.key });
      if (v.schema.description) panel.append(el("p", { class: "help" }, v.schema.description));
      this.fillObject(panel, path, v.schema, { section: path, key: v.key }, discriminator);
      panels.set(v.key, panel);
    }
    const input = picker.querySelector("select");
    this.unions.set(path, { picker: input, discriminator, panels });
    input.addEventListener("change", () => this.showVariant(path));
    fieldset.append(el("div", { class: "field-grid" }, picker), ...panels.values());
    this.showVariant(path);
  }

  showVariant(path) {
    const union = this.unions.get(path);
    const chosen = JSON.parse(union.picker.value || "null");
    for (const [key, panel] of union.panels) panel.hidden = key !== chosen;
    for (const f of this.allFields) {
      if (f.common && f.variant && f.variant.section === path) f.wrap.hidden = f.variant.key !== chosen;
    }
  }

  field(path, { kind, nullable, schema }, variant) {
    const id = idOf(variant ? `${variant.section}.${variant.key}${path.slice(variant.section.length)}` : path);
    const helpId = `${id}-help`;
    const errId = `${id}-err`;
    let input;
    if (kind === "enum") {
      const options = schema.const !== undefined ? [schema.const] : schema.enum;
      input = el("select", {}, nullable ? el("option", { value: "" }, "(none)") : null,
        ...options.map((o) => el("option", { value: JSON.stringify(o) }, String(o))));
    } else if (kind === "bool") {
      input = el("input", { type: "checkbox" });
    } else if (kind === "number") {
      const lo = schema.minimum ?? schema.exclusiveMinimum;
      const hi = schema.maximum ?? schema.exclusiveMaximum;
      input = el("input", { type: "number", inputmode: "decimal", step: schema.type === "integer" ? "1" : "any", min: lo, max: hi });
    } else if (kind === "choice") {
      input = el("input", { type: "text", list: `${id}-choices` });
      input.placeholder = `${schema.choices.join(", ")} or a number`;
    } else {
      input = el("input", { type: "text", minlength: schema.minLength, maxlength: schema.maxLength });
      if (kind === "list") input.placeholder = `comma-separated ${listItemType(schema)}s`;
    }
    if (nullable && kind !== "enum" && kind !== "bool") input.placeholder = `${input.placeholder ? `${input.placeholder}; ` : ""}empty = null`;
    Object.assign(input, { id, name: path });
    input.setAttribute("aria-describedby", `${helpId} ${errId}`);
    input.dataset.path = path;
    const helpBits = [schema.description, boundsText(schema), schema.default !== undefined ? `schema default ${JSON.stringify(schema.default)}` : ""].filter(Boolean);
    const error = el("span", { class: "field-error", id: errId, role: "alert" });
    const overrideNote = el("span", { class: "override-note", id: `${id}-override` });
    const label = el("label", { for: id }, labelOf(path.split(".").pop()));
    const wrap = el("div", { class: `field field-${kind}`, "data-path": path },
      kind === "bool" ? el("div", { class: "check" }, input, label) : [label, input],
      el("small", { class: "help", id: helpId }, helpBits.join(" · ")),
      kind === "choice" ? el("datalist", { id: `${id}-choices` }, ...schema.choices.map((c) => el("option", { value: c }))) : null,
      overrideNote, error);
    this.allFields.push({ path, input, kind, nullable, schema, error, wrap, variant, overrideNote, shown: null });
    return wrap;
  }

  /**
   * Fill the form from a nested config object; missing keys take the schema default. Unions
   * show the variant the config names (default: the first); the other variants get defaults.
   */
  setValues(config) {
    this.clearOverrides();
    for (const [path, union] of this.unions) {
      const key = valueAt(config, `${path}.${union.discriminator}`) ?? [...union.panels.keys()][0];
      union.picker.value = JSON.stringify(key);
      this.showVariant(path);
    }
    for (const f of this.allFields) {
      if (!f.variant && this.unions.has(f.path.slice(0, f.path.lastIndexOf(".")))) continue; // a picker: set above
      const inChosen = !f.variant || this.unions.get(f.variant.section).picker.value === JSON.stringify(f.variant.key);
      const value = inChosen ? valueAt(config, f.path) : undefined;
      this.setField(f, value === undefined ? f.schema.default : value);
    }
  }

  /** Whether `config` uses the first (default) variant of every union section. */
  usesDefaultVariants(config) {
    return [...this.unions].every(([path, u]) =>
      (valueAt(config, `${path}.${u.discriminator}`) ?? [...u.panels.keys()][0]) === [...u.panels.keys()][0]);
  }

  /** The chosen variant of each union section: {path: key}. */
  variants() {
    return Object.fromEntries([...this.unions].map(([path, u]) => [path, JSON.parse(u.picker.value)]));
  }

  setField(f, value) {
    const { input, kind } = f;
    if (kind === "bool") input.checked = Boolean(value);
    else if (kind === "enum") input.value = value === null || value === undefined ? "" : JSON.stringify(value);
    else if (kind === "list") input.value = Array.isArray(value) ? value.join(", ") : "";
    else input.value = value === null || value === undefined ? "" : String(value);
  }

  /** Parse one field; throws Error(message) for a value that cannot be read. */
  readField(f) {
    const { input, kind, nullable, schema } = f;
    if (kind === "bool") return input.checked;
    const raw = input.value.trim();
    if (raw === "" && (nullable || kind === "enum")) return null;
    if (kind === "enum") return JSON.parse(raw);
    if (kind === "choice") {
      if (raw === "") throw new Error(`one of ${schema.choices.join(", ")} or a number`);
      return /^-?\d+$/.test(raw) ? Number(raw) : raw;
    }
    if (kind === "number") {
      if (raw === "") throw new Error("a number is required");
      const n = Number(raw);
      if (!Number.isFinite(n)) throw new Error("not a number");
      return n;
    }
    if (kind === "list") {
      if (raw === "") return [];
      const parts = raw.startsWith("[") ? JSON.parse(raw) : raw.split(",").map((s) => s.trim()).filter(Boolean);
      const type = listItemType(schema);
      return parts.map((p) => {
        if (type !== "integer" && type !== "number") return String(p);
        const n = Number(p);
        if (!Number.isFinite(n)) throw new Error(`'${p}' is not a number`);
        return n;
      });
    }
    return input.value;
  }

  /** {values: {dotted: value}, errors: {dotted: message}} of the fields that count now. */
  read() {
    const values = {};
    const errors = {};
    for (const [path, f] of this.fields) {
      if (!f.input.checkValidity()) {
        errors[path] = f.input.validationMessage;
        continue;
      }
      try {
        values[path] = this.readField(f);
      } catch (err) {
        errors[path] = err.message;
      }
    }
    return { values, errors };
  }

  clearErrors() {
    for (const f of [...this.allFields, ...this.sections.values()]) f.error.textContent = "";
    for (const f of this.allFields) {
      f.input.removeAttribute("aria-invalid");
      f.wrap.classList.remove("has-error");
    }
  }

  /**
   * Show `message` at the field (or section) that `dotted` names, opening its section. Returns
   * false when nothing in the form matches (the caller shows it at the top).
   */
  showError(dotted, message) {
    const parts = dotted.split(".");
    const fields = this.fields;
    for (let n = parts.length; n > 0; n -= 1) {
      const path = parts.slice(0, n).join(".");
      const f = fields.get(path);
      if (f) {
        f.error.textContent = f.error.textContent ? `${f.error.textContent}; ${message}` : message;
        f.input.setAttribute("aria-invalid", "true");
        f.wrap.classList.add("has-error");
        this.reveal(f.wrap);
        return true;
      }
      const s = this.sections.get(path);
      if (s) {
        s.error.textContent = message;
        this.reveal(s.node);
        return true;
      }
    }
    return false;
  }

  reveal(node) {
    for (let n = node; n; n = n.parentElement) if (n.tagName === "DETAILS") n.open = true;
  }

  /**
   * Show in the field at `path` the value an override (the overrides box) gives it, marked as
   * such; returns false if no field has that path. `clearOverrides` puts the field's own value back.
   */
  showOverride(path, value) {
    const f = this.fields.get(path);
    if (!f) return false;
    if (!f.shown) f.shown = { before: this.readRaw(f) };
    this.setField(f, value);
    f.shown.value = this.readRaw(f);
    f.wrap.classList.add("overridden");
    f.overrideNote.textContent = "set by the overrides box";
    return true;
  }

  clearOverrides() {
    for (const f of this.allFields) {
      if (!f.shown) continue;
      // the user may have typed over the override's value since: keep what they typed
      if (this.readRaw(f) === f.shown.value) this.writeRaw(f, f.shown.before);
      f.shown = null;
      f.wrap.classList.remove("overridden");
      f.overrideNote.textContent = "";
    }
  }

  readRaw(f) {
    return f.kind === "bool" ? f.input.checked : f.input.value;
  }

  writeRaw(f, raw) {
    if (f.kind === "bool") f.input.checked = raw;
    else f.input.value = raw;
  }

  /** The first field marked invalid, to move focus to. */
  firstInvalid() {
    for (const f of this.fields.values()) if (f.input.getAttribute("aria-invalid")) return f.input;
    return null;
  }
}

/** Nested object from {dotted: value}. */
export function nest(flat) {
  const out = {};
  for (const [path, value] of Object.entries(flat)) {
    const keys = path.split(".");
    let node = out;
    for (const k of keys.slice(0, -1)) node = node[k] ??= {};
    node[keys[keys.length - 1]] = value;
  }
  return out;
}

/** {key: line number (from 1)} of "key=value" lines, to point at the line a key was written on. */
export function overrideLineNumbers(text) {
  const lines = {};
  for (const [i, line] of text.split("\n").entries()) {
    const eq = line.indexOf("=");
    if (eq > 0 && !line.trim().startsWith("#")) lines[line.slice(0, eq).trim()] = i + 1;
  }
  return lines;
}

/** "key=value" lines (like `pcm train --set`) -> {key: value}; values parsed as JSON if they can be. */
export function parseOverrideLines(text) {
  const out = {};
  for (const [i, line] of text.split("\n").entries()) {
    const trimmed = line.trim();
    if (!trimmed || trimmed.startsWith("#")) continue;
    const eq = trimmed.indexOf("=");
    if (eq < 1) throw new Error(`line ${i + 1}: expected key=value, got '${trimmed}'`);
    const raw = trimmed.slice(eq + 1).trim();
    let value;
    try {
      value = JSON.parse(raw);
    } catch {
      value = raw;
    }
    out[trimmed.slice(0, eq).trim()] = value;
  }
  return out;
}
