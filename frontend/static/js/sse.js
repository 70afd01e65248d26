// A run's live event stream (Server-Sent Events). The browser's EventSource reconnects by itself
// and resends Last-Event-ID, so after a drop the server replays exactly what was missed.

import { authedUrl } from "./api.js";

/**
 * Subscribe to `path` (e.g. /api/runs/7/events). `handlers` maps event types ("metrics",
 * "status", "chunks") to functions of the parsed data; `onState` gets "live" | "reconnecting" |
 * "closed". Returns {close()}.
 */
export function openStream(path, handlers, onState = () => {}) {
  const source = new EventSource(authedUrl(path));
  let closed = false;
  source.addEventListener("open", () => onState("live"));
  source.addEventListener("error", () => {
    if (closed) return;
    // CONNECTING: the browser retries on its own. CLOSED: the server refused (e.g. 404).
    onState(source.readyState === EventSource.CLOSED ? "closed" : "reconnecting");
  });
  for (const [type, handle] of Object.entries(handlers)) {
    source.addEventListener(type, (event) => {
      let data;
      try {
        data = JSON.parse(event.data);
      } catch {
        console.warn(`unparsable ${type} event`, event.data);
        return;
      }
      handle(data, event);
    });
  }
  return {
    close() {
      closed = true;
      source.close();
      onState("closed");
    },
  };
}
