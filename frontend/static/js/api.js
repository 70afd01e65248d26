// HTTP client for the PCM Lab API: one place for the bearer token, JSON bodies, and errors.
//
// Embedded profile (single_user): no token needed. Lab profile: the token from /login lives in
// localStorage and goes out as `Authorization: Bearer ...`; a 401 sends the user to /login.

const TOKEN_KEY = "pcm.token";

export function getToken() {
  return localStorage.getItem(TOKEN_KEY);
}

export function setToken(token) {
  if (token) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
}

/** An API answer that was not 2xx. `fields` lists dotted config paths a 422 names. */
export class ApiError extends Error {
  constructor(status, body) {
    super(describeError(status, body));
    this.status = status;
    this.body = body;
    this.detail = body && body.detail;
    this.fields = (body && body.fields) || [];
  }
}

function describeError(status, body) {
  const detail = body && body.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail) && detail.length) {
    return detail.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("; ");
  }
  return `HTTP ${status}`;
}

export function loginUrl() {
  const next = location.pathname + location.search;
  return `/login?next=${encodeURIComponent(next)}`;
}

/**
 * fetch() a JSON endpoint. Options: method, body (JSON-encoded), query (object, empty values
 * dropped, an array's items each sent as the same key), auth (default true: send the login token,
 * redirect to /login on 401), token (the credential to send instead, e.g. a share link's token).
 */
export async function api(path, { method = "GET", body, query, auth = true, token = auth ? getToken() : null } = {}) {
  const url = new URL(path, location.origin);
  for (const [key, value] of Object.entries(query || {})) {
    if (Array.isArray(value)) for (const item of value) url.searchParams.append(key, item); // repeated: ?k=a&k=b
    else if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
  }
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401 && auth && location.pathname !== "/login") {
    setToken(null);
    location.assign(loginUrl());
    // Navigation is under way; a never-settling promise stops callers from rendering errors.
    return new Promise(() => {});
  }
  if (response.status === 204) return null;
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { detail: text };
    }
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

/**
 * A URL for a request that cannot send headers (EventSource, a download link). With a credential
 * it carries a ticket — single-use, valid about a minute, for this one purpose and run — never
 * the token itself, which access logs, proxies and browser history would keep. `token` asks for
 * the ticket (default: the login token; a share page passes its link's); `auth` as for api().
 * Single-user mode has no credential, and the bare path works.
 */
export async function ticketUrl(path, { purpose, runId, token = getToken(), auth = true }) {
  if (!token) return path;
  const body = { purpose, run_id: runId };
  const { ticket } = await api("/api/tickets", { method: "POST", body, token, auth });
  const url = new URL(path, location.origin);
  url.searchParams.set("ticket", ticket);
  return url.pathname + url.search;
}

let healthPromise = null;

/** GET /api/health once per page (profile, single_user, broker). */
export function health() {
  healthPromise ??= api("/api/health", { auth: false });
  return healthPromise;
}

/**
 * Pages that need a user call this first: in the lab profile without a stored token it goes
 * straight to /login (instead of letting every request fail with 401).
 */
export async function ensureSession() {
  const info = await health();
  if (info.single_user || getToken()) return info;
  location.assign(loginUrl());
  return new Promise(() => {});
}
