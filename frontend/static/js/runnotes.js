// A run's tags and notes on its page, edited in place (PATCH /api/runs/{id}); the runs list
// searches both (?tag=, ?q=). Who may not change the run sees them read-only.

import { el } from "./ui.js";

/** "a, b c" -> ["a", "b", "c"]: tags hold no spaces or commas. */
export const parseTags = (text) => [...new Set(text.split(/[\s,]+/).filter(Boolean))];

/**
 * The editor: `run` gives the current values, `save({tags, notes})` sends them and resolves to
 * the updated run (or throws). Built once; refreshing the run does not touch what is being typed.
 */
export function tagsNotesEditor(run, save) {
  const tags = el("input", { id: "run-tags", type: "text", value: (run.tags || []).join(", "),
    placeholder: "ablation, budget-sweep", "aria-describedby": "run-tags-help" });
  const notes = el("textarea", { id: "run-notes", rows: 3, placeholder: "what this run is for, what you saw" });
  notes.value = run.notes || "";
  const status = el("span", { class: "muted", role: "status", id: "run-notes-status" });
  const submit = el("button", { type: "submit", class: "btn", id: "run-notes-save" }, "Save tags and notes");
  const form = el("form", { id: "run-notes-form", class: "run-notes", "aria-label": "tags and notes" },
    el("div", { class: "field" }, el("label", { for: "run-tags" }, "tags"), tags,
      el("small", { class: "help", id: "run-tags-help" }, "separated by commas or spaces; the runs list filters by them")),
    el("div", { class: "field" }, el("label", { for: "run-notes" }, "notes"), notes),
    el("div", { class: "actions" }, submit, status));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    status.textContent = "saving…";
    try {
      const saved = await save({ tags: parseTags(tags.value), notes: notes.value });
      tags.value = saved.tags.join(", ");
      status.textContent = "saved";
    } catch (err) {
      status.textContent = `not saved: ${err.message}`;
    } finally {
      submit.disabled = false;
    }
  });
  return el("details", { class: "section-toggle", id: "run-notes-panel", open: Boolean(run.notes) || null },
    el("summary", {}, "tags and notes"), form);
}
