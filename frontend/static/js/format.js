// Number, size and time formatting shared by every page.

const DASH = "—";

export function isNum(v) {
  return typeof v === "number" && Number.isFinite(v);
}

export function fmtPct(v, digits = 1) {
  return isNum(v) ? `${(v * 100).toFixed(digits)}%` : DASH;
}

export function fmtSeconds(v) {
  if (!isNum(v)) return DASH;
  if (v < 1) return `${(v * 1000).toFixed(0)} ms`;
  if (v < 120) return `${v.toFixed(2)} s`;
  return fmtDuration(v);
}

export function fmtDuration(seconds) {
  if (!isNum(seconds)) return DASH;
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (h) return `${h} h ${String(m).padStart(2, "0")} min`;
  if (m) return `${m} min ${String(sec).padStart(2, "0")} s`;
  return `${sec} s`;
}

export function fmtBytes(v) {
  if (!isNum(v)) return DASH;
  const units = ["B", "KB", "MB", "GB", "TB"];
  let x = v;
  let i = 0;
  while (Math.abs(x) >= 1000 && i < units.length - 1) {
    x /= 1000;
    i += 1;
  }
  return `${x.toFixed(i ? 1 : 0)} ${units[i]}`;
}

export function fmtRatio(v) {
  return isNum(v) ? `${v.toFixed(2)}×` : DASH;
}

export function fmtDate(iso) {
  if (!iso) return DASH;
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

/** "3 min ago" style age of an ISO timestamp. */
export function fmtAgo(iso) {
  if (!iso) return DASH;
  const seconds = (Date.now() - new Date(iso).getTime()) / 1000;
  if (!Number.isFinite(seconds)) return iso;
  if (seconds < 5) return "just now";
  return `${fmtDuration(seconds)} ago`;
}

/** A run's processes from its config's `dist` section: "1 process", "2 ranks · ddp",
 * "8 ranks · fsdp · 2 nodes". A config from before `dist` existed trains in one process. */
export function fmtProcesses(dist) {
  const ranks = dist?.world_size ?? 1;
  if (ranks <= 1) return "1 process";
  const nodes = dist.nodes > 1 ? ` · ${dist.nodes} nodes` : "";
  return `${ranks} ranks · ${dist.strategy}${nodes}`;
}

/** Ranks as runs of consecutive numbers: [0, 1] -> "ranks 0–1", [3] -> "rank 3",
 * [0, 2, 3] -> "ranks 0, 2–3". */
export function fmtRanks(ranks) {
  const sorted = [...ranks].sort((a, b) => a - b);
  const runs = [];
  for (const rank of sorted) {
    const last = runs[runs.length - 1];
    if (last && rank === last[1] + 1) last[1] = rank;
    else runs.push([rank, rank]);
  }
  const text = runs.map(([first, end]) => (first === end ? `${first}` : `${first}–${end}`)).join(", ");
  return `${sorted.length === 1 ? "rank" : "ranks"} ${text}`;
}

/** One node of a run's placement, as a worker holds it: "ranks 0–1 (node 0)". */
export function fmtNode({ ranks, node_rank: nodeRank }) {
  return `${fmtRanks(ranks)} (node ${nodeRank})`;
}
