// The login form: posts JSON (never a plain form post, so another site cannot log a
// browser in) and goes to the console once the session cookie is set.
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
    error.textContent = body.error || `Sign-in failed (${response.status})`;
  } catch (e) {
    error.textContent = "The engine did not answer: " + e.message;
  }
  error.hidden = false;
  button.disabled = false;
});
