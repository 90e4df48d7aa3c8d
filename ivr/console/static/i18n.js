// The page's language and the bank's time zone, for login.js and app.js. The server puts
// the catalogue of the page's language (ivr/console/static/i18n/<lang>.json), the names'
// labels and the zone in a JSON data block (never executed: the CSP holds); the switch
// remembers a choice in a cookie the server reads, and reloads the page in it.
"use strict";

const I18N = JSON.parse(document.getElementById("i18n-data").textContent);
const LANG_COOKIE = "ivr_lang";
const missingMessages = new Set();  // keys the catalogue lacks (the tests read it)

// A message, its {name} placeholders filled from vars.
function t(key, vars) {
  let text = I18N.messages[key];
  if (text === undefined) { missingMessages.add(key); text = key; }
  return vars ? text.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m)) : text;
}

// A name's label (intent, queue, reason, outcome, status, signal, transport): the
// language's label, else the name itself.
function labelText(kind, name) {
  if (name === null || name === undefined || name === "") return "";
  const labels = I18N.labels[kind] || {};
  return labels[name] || String(name);
}

// The bank's wall clock ("2026-12-03 07:30:00"), whatever the browser's own zone.
const BANK_CLOCK = new Intl.DateTimeFormat("sv-SE", {
  timeZone: I18N.timezone.name, year: "numeric", month: "2-digit", day: "2-digit",
  hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false});
function bankTime(unix) {
  return unix ? BANK_CLOCK.format(new Date(unix * 1000)).replace("T", " ") : "";
}
function bankHour(unix) { return Number(bankTime(unix).slice(11, 13)); }

function setLanguage(lang) {
  document.cookie = `${LANG_COOKIE}=${encodeURIComponent(lang)}; path=/console; ` +
    "max-age=31536000; SameSite=Strict";
  window.location.reload();
}

(function languageSwitch() {
  const pick = document.getElementById("lang-switch");
  if (!pick) return;
  for (const lang of I18N.langs) {
    const option = document.createElement("option");
    option.value = lang;
    option.textContent = t(`lang.${lang}`);
    option.selected = lang === I18N.lang;
    pick.append(option);
  }
  pick.addEventListener("change", () => setLanguage(pick.value));
})();
