// The login form: posts JSON (never a plain form post, so another site cannot log a
// browser in) and goes to the console once the session cookie is set. Texts: i18n.js.
"use strict";

document.getElementById("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = document.getElementById("login-error");
  const button = document.getElementById("login-submit");
  error.hidden = true;
  button.disabled = true;
  try {
    const response = await fetch("/console/api/login", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({
        name: document.getElementById("name").value,
        password: document.getElementById("password").value,
      }),
    });
    if (response.ok) {
      window.location.assign("/console/");
      return;
    }
    const body = await response.json().catch(() => ({}));
    // The server's refusals in the page's language; others as the server says them.
    const known = {401: "login.wrong", 403: "login.disabled", 429: "login.throttled"};
    error.textContent = known[response.status]
      ? t(known[response.status], {wait: response.headers.get("Retry-After") || "?"})
      : body.error || t("login.failed", {status: response.status});
  } catch (e) {
    error.textContent = t("login.unreachable", {error: e.message});
  }
  error.hidden = false;
  button.disabled = false;
});
