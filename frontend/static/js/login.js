// The login page (lab profile): exchange username + password for a bearer token, keep it in
// localStorage, go back where the user came from.

import { api, ApiError, health, setToken } from "./api.js";
import { mountNav, notice } from "./ui.js";

export async function mountLoginPage() {
  mountNav({ minimal: true });
  const form = document.getElementById("login-form");
  const message = document.getElementById("login-message");
  const next = new URLSearchParams(location.search).get("next");
  // Only same-site paths: never bounce a user to another origin after login.
  const target = next && next.startsWith("/") && !next.startsWith("//") ? next : "/";
  try {
    if ((await health()).single_user) {
      notice(message, "This server runs single-user: no login needed.", "info");
    }
  } catch {
    notice(message, "The API is unreachable.", "error");
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { username: form.username.value.trim(), password: form.password.value };
    try {
      const answer = await api("/api/auth/login", { method: "POST", body, auth: false });
      setToken(answer.token);
      location.assign(target);
    } catch (err) {
      notice(message, err instanceof ApiError && err.status === 401 ? "Wrong username or password." : err.message, "error");
      form.password.select();
    }
  });
}
