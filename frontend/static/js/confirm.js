// A confirm step for a destructive button (cancel a run): one question, one click more.

import { el } from "./ui.js";

/**
 * A confirm step for a destructive button: `ask()` shows `question` with a confirming and a
 * keep button (one question, one click more); `onConfirm` runs only on the confirming one.
 */
export function confirmStep({ id, question, confirmLabel, keepLabel, onConfirm, returnFocus }) {
  const yes = el("button", { type: "button", class: "btn btn-danger", id: `${id}-yes` }, confirmLabel);
  const no = el("button", { type: "button", class: "btn", id: `${id}-no` }, keepLabel);
  const row = el("div", { class: "confirm-step", id, role: "group", "aria-label": question, hidden: true },
    el("span", {}, question), yes, no);
  const close = () => {
    row.hidden = true;
  };
  yes.addEventListener("click", async () => {
    close();
    await onConfirm();
  });
  no.addEventListener("click", () => {
    close();
    returnFocus()?.focus();
  });
  return {
    node: row,
    ask: () => {
      row.hidden = false;
      yes.focus();
    },
    close,
  };
}
