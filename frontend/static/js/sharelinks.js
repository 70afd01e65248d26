// A run's read-only share links on its page: "New share link" makes one (its URL, built by the
// server from PCM_PUBLIC_URL, is shown once and copied), and the list below shows every link of
// the run, active or revoked, with a Revoke button (GET / POST / DELETE /api/runs/{id}/share).

import { fmtAgo, fmtDate } from "./format.js";
import { clear, copyText, el, notice } from "./ui.js";

export class ShareLinks {
  /** `call` is the page's API call; `base` the run's API path; `message` where notes go. */
  constructor({ call, base, message }) {
    this.call = call;
    this.path = `${base}/share`;
    this.message = message;
    this.url = el("input", { id: "share-url", type: "text", readonly: true, "aria-label": "new share link", hidden: true });
    this.button = el("button", { type: "button", class: "btn", id: "share-run", onclick: () => this.create() }, "New share link");
    this.list = el("div", { id: "share-links", class: "share-links" });
  }

  async create() {
    try {
      const share = await this.call(this.path, { method: "POST" });
      this.url.value = share.url;
      this.url.hidden = false;
      const copied = await copyText(share.url, this.url);
      notice(this.message, copied
        ? "Share link copied to the clipboard (read-only, no login needed). It is shown only now; revoke it below."
        : "Share link created: copy it from the box (it is shown only now).", "ok");
      await this.refresh();
    } catch (err) {
      notice(this.message, `Share failed: ${err.message}`, "error");
    }
  }

  async revoke(link) {
    try {
      await this.call(`${this.path}/${link.id}`, { method: "DELETE" });
      notice(this.message, `Share link #${link.id} revoked: it no longer opens this run.`, "ok");
      await this.refresh();
    } catch (err) {
      notice(this.message, `Revoke failed: ${err.message}`, "error");
    }
  }

  async refresh() {
    const links = await this.call(this.path);
    clear(this.list);
    if (!links.length) return;
    const active = links.filter((link) => !link.revoked_at).length;
    this.list.append(el("details", { open: active > 0 },
      el("summary", {}, `Share links: ${active} active of ${links.length}`),
      el("table", { class: "table" },
        el("thead", {}, el("tr", {}, ...["link", "created", "state", ""].map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, links.map((link) => el("tr", { "data-share-id": link.id },
          el("td", {}, `#${link.id}`),
          el("td", {}, el("time", { datetime: link.created_at, title: fmtDate(link.created_at) }, fmtAgo(link.created_at))),
          el("td", { class: "share-state" }, link.revoked_at ? `revoked ${fmtAgo(link.revoked_at)}` : "active"),
          el("td", {}, link.revoked_at ? null : el("button", { type: "button", class: "btn btn-small revoke-share",
            onclick: () => this.revoke(link) }, "Revoke"))))))));
  }
}
