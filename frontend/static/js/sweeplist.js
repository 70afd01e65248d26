// The Runs page's list of sweeps (GET /api/sweeps): each links to its sweep page. Hidden while
// the caller has none.

import { api } from "./api.js";
import { fmtAgo } from "./format.js";
import { clear, el } from "./ui.js";

export async function mountSweepList() {
  const card = document.getElementById("sweeps-card");
  if (!card) return;
  const sweeps = await api("/api/sweeps", { query: { limit: 20 } });
  card.hidden = !sweeps.length;
  const grid = (sweep) => Object.entries(sweep.grid).map(([k, v]) => `${k} × ${v.length}`).join(", ");
  clear(document.getElementById("sweeps-list")).append(...sweeps.map((sweep) => el("li", { "data-sweep-id": sweep.id },
    el("a", { href: `/sweeps/${sweep.id}` }, `${sweep.name} #${sweep.id}`),
    el("span", { class: "muted" }, ` · ${grid(sweep) || "no grid"} · ${sweep.seeds.length} seeds · ${fmtAgo(sweep.created_at)}`))));
}
