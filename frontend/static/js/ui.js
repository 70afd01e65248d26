// Small DOM helpers and the page chrome (top navigation, status badges, notices).

import { api, getToken, health, setToken } from "./api.js";
import { fmtDate } from "./format.js";

/**
 * el("a", {href: "/x", class: "btn"}, "text", child) -> HTMLElement.
 * Attributes starting with "on" become listeners; `dataset` and `style` objects are merged;
 * null/false children are skipped.
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === "dataset" || key === "style") {
      Object.assign(node[key], value);
    } else if (key === "class") {
      node.className = value;
    } else if (value === true) {
      node.setAttribute(key, "");
    } else {
      node.setAttribute(key, value);
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export function clear(node) {
  node.replaceChildren();
  return node;
}

export function statusBadge(status) {
  return el("span", { class: `status status-${status}`, "data-status": status }, status);
}

/** "waiting for a worker since …" for a run the server says no worker has claimed in time; else null. */
export function waitingNote(run) {
  const since = run.waiting_for_worker_since;
  if (!since) return null;
  return el("span", { class: "waiting-note", "data-waiting-since": since },
    "waiting for a worker since ", el("time", { datetime: since }, fmtDate(since)));
}

export function progressBar(done, total) {
  const pct = total ? Math.min(100, (100 * (done || 0)) / total) : 0;
  return el(
    "span",
    { class: "progress", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": total || 0,
      "aria-valuenow": done || 0, "aria-label": "steps done" },
    el("span", { class: "progress-fill", style: { width: `${pct}%` } }),
    el("span", { class: "progress-text" }, `${done ?? 0} / ${total ?? "?"}`),
  );
}

/** A message line (role=status or alert) in `container`; kind: info | error | ok. */
export function notice(container, message, kind = "info") {
  const box = el("p", { class: `notice notice-${kind}`, role: kind === "error" ? "alert" : "status" }, message);
  clear(container).append(box);
  return box;
}

/** Copy text; falls back to selecting `fallbackInput` when the clipboard API is refused. */
export async function copyText(text, fallbackInput) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    if (fallbackInput) {
      fallbackInput.focus();
      fallbackInput.select();
    }
    return false;
  }
}

/**
 * Fill the page's <header id="topbar">: brand, links, and who is signed in. `minimal` (share and
 * login pages) shows the brand and `note` only, and makes no authenticated calls.
 */
export async function mountNav({ minimal = false, note = "" } = {}) {
  const bar = document.getElementById("topbar");
  if (!bar) return;
  const here = location.pathname;
  const link = (href, text) =>
    el("a", { href, class: "nav-link", "aria-current": here === href ? "page" : null }, text);
  const who = el("span", { class: "nav-user" });
  const nav = el("nav", { "aria-label": "main" }, link("/", "Runs"), link("/compare", "Compare"), link("/workers", "Workers"), link("/labs", "Lab"), link("/docs", "API"));
  // DOM append() would print a null as the text "null": leave the nav out explicitly
  clear(bar).append(...[el("a", { href: "/", class: "brand" }, "PCM Lab"), minimal ? null : nav, who].filter(Boolean));
  if (minimal) {
    if (note) who.append(el("span", { class: "muted" }, note));
    return;
  }
  try {
    const info = await health();
    if (info.single_user) {
      who.append(el("span", { class: "muted", title: "embedded profile: no login needed" }, "single-user"));
      return;
    }
    if (!getToken()) return;
    const me = await api("/api/auth/me");
    const user = me.user || me;
    who.append(
      el("span", {}, user.username || ""),
      el("button", { type: "button", class: "btn-link", onclick: async () => {
        await api("/api/auth/logout", { method: "POST" }).catch(() => null); // revokes this token
        setToken(null);
        location.assign("/login");
      } }, "Log out"),
    );
  } catch (err) {
    who.append(el("span", { class: "muted" }, "API unreachable"));
    console.warn(err);
  }
}

/** Read/write the page's query string without reloading (shareable views). */
export function readQuery() {
  return Object.fromEntries(new URLSearchParams(location.search));
}

export function writeQuery(params) {
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") search.set(k, v);
  const qs = search.toString();
  history.replaceState(null, "", qs ? `${location.pathname}?${qs}` : location.pathname);
}

/** Run `fn` every `ms` while `shouldContinue()`; pauses while the tab is hidden. */
export function poll(fn, ms, shouldContinue = () => true) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    timer = null;
    if (stopped) return;
    if (!document.hidden && shouldContinue()) {
      try {
        await fn();
      } catch (err) {
        console.warn("refresh failed", err);
      }
    }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  timer = setTimeout(tick, ms);
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
  };
}
