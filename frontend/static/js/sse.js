// A run's live event stream (Server-Sent Events). EventSource cannot send a header and a token
// never goes into a URL, so each connection opens with a fresh single-use ticket. That is why
// this module reconnects by itself instead of letting EventSource retry a spent ticket: after a
// drop it asks for a new ticket and resumes after the last event it saw (the server replays the
// rest). A refused ticket (the token or share link was revoked, the run is gone) ends the stream.

import { ApiError, ticketUrl } from "./api.js";

const RETRY_MS = 3000;

/** A 4xx other than 429 will not change by retrying. */
function refused(err) {
  return err instanceof ApiError && err.status >= 400 && err.status < 500 && err.status !== 429;
}

/**
 * Subscribe to `path` (e.g. /api/runs/7/events, optionally with ?last_event_id=). `handlers` maps
 * event types ("metrics", "status", "chunks") to functions of the parsed data; `onState` gets
 * "live" | "reconnecting" | "closed"; `credential` is {runId, token, auth}: the run and what asks
 * for its tickets (default: the login token, see ticketUrl). Returns {close()}.
 */
export function openStream(path, handlers, onState = () => {}, { runId, token, auth } = {}) {
  const start = new URL(path, location.origin);
  let lastId = start.searchParams.get("last_event_id");
  let source = null;
  let timer = null;
  let closed = false;

  const close = () => {
    closed = true;
    clearTimeout(timer);
    if (source) source.close();
    onState("closed");
  };
  const retry = () => {
    if (closed) return;
    onState("reconnecting");
    timer = setTimeout(connect, RETRY_MS);
  };
  async function connect() {
    if (lastId) start.searchParams.set("last_event_id", lastId);
    let url;
    try {
      url = await ticketUrl(start.pathname + start.search, { purpose: "events", runId, token, auth });
    } catch (err) {
      if (refused(err)) close();
      else retry();
      return;
    }
    if (closed) return;
    source = new EventSource(url);
    source.addEventListener("open", () => onState("live"));
    source.addEventListener("error", () => {
      source.close(); // its own retry would reuse the spent ticket
      retry();
    });
    for (const [type, handle] of Object.entries(handlers)) {
      source.addEventListener(type, (event) => {
        if (event.lastEventId) lastId = event.lastEventId;
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
  }

  connect();
  return { close };
}
