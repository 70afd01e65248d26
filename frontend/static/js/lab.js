// The lab page: your labs and their members (owners add people and set roles), and your API
// tokens (a new token's secret is shown once; revoke any time).

import { api, ensureSession } from "./api.js";
import { fmtAgo, fmtDate } from "./format.js";
import { clear, copyText, el, mountNav, notice } from "./ui.js";

const ROLES = ["member", "owner", "viewer"];

export async function mountLabPage() {
  await ensureSession();
  mountNav();
  await Promise.all([
    renderLabs().catch((err) => notice(document.getElementById("labs"), `Could not load labs: ${err.message}`, "error")),
    renderTokens().catch((err) => notice(document.getElementById("tokens"), `Could not load tokens: ${err.message}`, "error")),
  ]);
}

// --- labs ---------------------------------------------------------------------------------------

async function renderLabs() {
  const box = document.getElementById("labs");
  const labs = await api("/api/labs");
  const details = await Promise.all(labs.map((lab) => api(`/api/labs/${lab.id}`)));
  const name = el("input", { id: "new-lab-name", type: "text", required: true, maxlength: 64 });
  const message = el("div", { role: "status" });
  const create = el("form", { class: "inline-form", id: "new-lab-form" },
    el("div", { class: "field" }, el("label", { for: "new-lab-name" }, "new lab name"), name),
    el("div", { class: "field field-button" }, el("button", { type: "submit", class: "btn" }, "Create lab")),
    message);
  create.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("/api/labs", { method: "POST", body: { name: name.value.trim() } });
      await renderLabs();
    } catch (err) {
      notice(message, err.message, "error");
    }
  });
  clear(box).append(...details.map(labCard), create);
}

function labCard(lab) {
  const canManage = lab.role === "owner" || lab.role === null; // null: an admin who is no member
  const message = el("div", { role: "status" });
  const card = el("section", { class: "card", "data-lab-id": lab.id, "aria-labelledby": `lab-${lab.id}-title` },
    el("h3", { id: `lab-${lab.id}-title` }, lab.name, el("span", { class: "muted" }, lab.role ? ` — you are ${lab.role}` : " — admin view")),
    el("table", { class: "table" },
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "member"), el("th", { scope: "col" }, "role"))),
      el("tbody", {}, lab.members.map((m) => el("tr", {}, el("td", {}, m.username), el("td", {}, m.role))))));
  if (canManage) {
    const id = `lab-${lab.id}-member`;
    const username = el("input", { id, type: "text", required: true, autocomplete: "off" });
    const role = el("select", { id: `${id}-role` }, ...ROLES.map((r) => el("option", { value: r }, r)));
    const form = el("form", { class: "inline-form" },
      el("div", { class: "field" }, el("label", { for: id }, "username"), username),
      el("div", { class: "field" }, el("label", { for: `${id}-role` }, "role"), role),
      el("div", { class: "field field-button" }, el("button", { type: "submit", class: "btn" }, "Add / change role")),
      message);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        const updated = await api(`/api/labs/${lab.id}/members`, { method: "POST", body: { username: username.value.trim(), role: role.value } });
        card.replaceWith(labCard(updated));
      } catch (err) {
        notice(message, err.message, "error");
      }
    });
    card.append(form);
  }
  return card;
}

// --- tokens -------------------------------------------------------------------------------------

async function renderTokens() {
  const box = document.getElementById("tokens");
  const tokens = await api("/api/tokens");
  const name = el("input", { id: "token-name", type: "text", required: true, maxlength: 128, placeholder: "e.g. laptop script" });
  const secretBox = el("div", { id: "token-secret", role: "status" });
  const form = el("form", { class: "inline-form", id: "token-form" },
    el("div", { class: "field" }, el("label", { for: "token-name" }, "new token name"), name),
    el("div", { class: "field field-button" }, el("button", { type: "submit", class: "btn btn-primary" }, "Create token")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const created = await api("/api/tokens", { method: "POST", body: { name: name.value.trim() } });
      await renderTokens();
      showSecret(document.getElementById("token-secret"), created.token);
    } catch (err) {
      notice(secretBox, err.message, "error");
    }
  });
  const live = tokens.filter((t) => !t.revoked_at);
  clear(box).append(
    form,
    secretBox,
    el("table", { class: "table", id: "tokens-table" },
      el("thead", {}, el("tr", {}, ...["name", "prefix", "created", "last used", ""].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, live.map((t) => el("tr", { "data-token-id": t.id },
        el("td", {}, t.name), el("td", {}, el("code", {}, `${t.prefix}…`)),
        el("td", {}, fmtDate(t.created_at)), el("td", {}, t.last_used_at ? fmtAgo(t.last_used_at) : "never"),
        el("td", {}, el("button", { type: "button", class: "btn btn-danger", "aria-label": `revoke token ${t.name}`,
          onclick: async () => {
            try {
              await api(`/api/tokens/${t.id}`, { method: "DELETE" });
              await renderTokens();
            } catch (err) {
              notice(secretBox, `Could not revoke: ${err.message}`, "error");
            }
          } }, "Revoke")))))),
    live.length ? null : el("p", { class: "muted" }, "No active tokens."));
}

function showSecret(box, secret) {
  const input = el("input", { type: "text", readonly: true, value: secret, id: "token-secret-value", "aria-label": "new token" });
  const copy = el("button", { type: "button", class: "btn", onclick: async () => {
    copy.textContent = (await copyText(secret, input)) ? "Copied" : "Select and copy";
  } }, "Copy");
  clear(box).append(el("div", { class: "notice notice-ok" },
    el("p", {}, "Your new token — shown only now. Use it as ", el("code", {}, "Authorization: Bearer <token>"), "."),
    el("div", { class: "secret-row" }, input, copy)));
  input.select();
}
