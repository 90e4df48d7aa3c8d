// The ops console: calls, a call's timeline and replay, live figures; for trainers, the
// review queue (labels, ASR errors, synonyms) and the models (train, compare, promote).
// One page, its views chosen by the URL's hash (#/calls?..., #/call/ID, #/figures, #/trends?...,
// #/review?..., #/review/CLUSTER?..., #/model?...).
// Everything from the server goes into the page as text (never as HTML), so a caller's
// words can never become markup.
"use strict";

const OUTCOMES = ["self_service", "escalated", "hangup"];
const STATUSES = ["live", "complete", "incomplete"];
const QUEUES = ["general", "cards", "fraud", "loans", "wealth", "private_banking", "complaints"];
const INTENTS = [
  "check_balance", "recent_transactions", "credit_card_bill", "report_lost_card",
  "activate_card", "branch_info", "exchange_rate", "interest_rate", "password_reset",
  "fraud_report", "complaint", "loan_inquiry", "wealth_management", "human_agent",
];
const PERIODS = [["1", "Last hour"], ["24", "Last 24 hours"], ["168", "Last 7 days"],
  ["720", "Last 30 days"], ["", "All time"]];
const PAGE = 50;
const REFRESH_MS = 10000;

const me = {name: "", role: "", csrf: ""};
let refreshTimer = null;

// --- small helpers ---------------------------------------------------------------------
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    // Styles through the CSSOM: the page's CSP refuses style="..." attributes.
    else if (key === "style") for (const [k, v] of Object.entries(value)) el.style.setProperty(k, v);
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

const SVG = "http://www.w3.org/2000/svg";
function s(tag, attrs, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, value);
  if (text !== undefined) el.textContent = text;
  return el;
}

function pad(n) { return String(n).padStart(2, "0"); }
function when(unix) {
  if (!unix) return "";
  const d = new Date(unix * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
function clock(seconds) {
  if (seconds === null || seconds === undefined || isNaN(seconds)) return "";
  const total = Math.max(0, Math.round(seconds));
  return `${Math.floor(total / 60)}:${pad(total % 60)}`;
}
function duration(call) {
  return call.ended_at ? clock(call.ended_at - call.started_at) : "";
}
function percent(x) { return x === null || x === undefined ? "–" : `${(x * 100).toFixed(1)}%`; }
function conf(x) { return typeof x === "number" ? x.toFixed(2) : ""; }

function badge(text, kind) {
  return text ? h("span", {class: `badge ${kind || ""}`.trim()}, text) : "";
}
function outcomeBadge(outcome) {
  const kinds = {self_service: "ok", escalated: "warn", hangup: "muted"};
  return badge(outcome, kinds[outcome]);
}
function statusBadge(status) {
  const kinds = {live: "live", complete: "", incomplete: "bad"};
  return badge(status, kinds[status]);
}

function toast(message) {
  const el = document.getElementById("toast");
  el.textContent = message;
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.hidden = true; }, 6000);
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, options = {}) {
  const init = {method: options.method || "GET", headers: {}, credentials: "same-origin"};
  if (init.method !== "GET") init.headers["X-CSRF-Token"] = me.csrf;
  if (options.body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.body);
  }
  const response = await fetch(`/console/api/${path}`, init);
  if (response.status === 401) {
    window.location.assign("/console/login");
    throw new ApiError(401, "signed out");
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, body.error || response.statusText);
  return body;
}

// --- charts: horizontal bars in inline SVG ---------------------------------------------
function barChart(title, data, options = {}) {
  const entries = Object.entries(data || {}).sort((a, b) => b[1] - a[1]);
  const figure = h("figure", {class: "chart", "data-chart": options.id || ""},
    h("figcaption", {}, title));
  if (!entries.length) {
    figure.append(h("p", {class: "muted empty"}, "Nothing in this period"));
    return figure;
  }
  const row = 26, labelW = 150, valueW = 48, width = 460;
  const barW = width - labelW - valueW;
  const max = Math.max(...entries.map(([, v]) => v));
  const svg = s("svg", {viewBox: `0 0 ${width} ${entries.length * row + 4}`,
    class: "bars", role: "img", "aria-label": title});
  entries.forEach(([label, value], i) => {
    const y = i * row + 2;
    const w = Math.max(2, Math.round(barW * value / max));
    const g = s("g", {class: `bar ${options.tone || ""}`.trim()});
    g.append(s("title", {}, `${label}: ${value}`));
    g.append(s("text", {x: labelW - 8, y: y + row / 2 + 4, "text-anchor": "end",
      class: "bar-label"}, label));
    g.append(s("rect", {x: labelW, y: y + 4, width: w, height: row - 8, rx: 3}));
    g.append(s("text", {x: labelW + w + 6, y: y + row / 2 + 4, class: "bar-value"},
      String(value)));
    svg.append(g);
  });
  figure.append(svg);
  return figure;
}

// --- view: calls -----------------------------------------------------------------------
function select(name, label, values, current) {
  return h("label", {class: "field"}, h("span", {}, label),
    h("select", {name, id: `filter-${name}`},
      values.map(([value, text]) => h("option", {value, selected: value === current}, text))));
}

async function callsView(params) {
  const view = document.getElementById("view");
  const period = params.has("hours") ? params.get("hours") : "24";
  const form = h("form", {class: "filters", id: "filters"},
    select("hours", "Period", PERIODS, period),
    select("outcome", "Outcome", [["", "Any"], ...OUTCOMES.map((o) => [o, o])],
      params.get("outcome") || ""),
    select("status", "Status", [["", "Any"], ...STATUSES.map((o) => [o, o])],
      params.get("status") || ""),
    select("queue", "Queue", [["", "Any"], ...QUEUES.map((q) => [q, q])],
      params.get("queue") || ""),
    h("label", {class: "field"}, h("span", {}, "Intent"),
      h("input", {name: "intent", id: "filter-intent", list: "intents",
        value: params.get("intent") || "", placeholder: "any"})),
    h("datalist", {id: "intents"}, INTENTS.map((i) => h("option", {value: i}))),
    h("label", {class: "field"}, h("span", {}, "Caller"),
      h("input", {name: "caller", id: "filter-caller", value: params.get("caller") || "",
        placeholder: "+86…"})),
    h("div", {class: "field actions"},
      h("button", {type: "submit", class: "button primary", id: "apply-filters"}, "Apply"),
      h("a", {href: "#/calls", class: "button"}, "Reset")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const [key, value] of new FormData(form)) if (value || key === "hours") next.set(key, value);
    window.location.hash = `#/calls?${next}`;
  });
  form.addEventListener("change", (event) => {
    if (event.target.tagName === "SELECT") form.requestSubmit();
  });

  const body = h("tbody", {});
  const table = h("table", {class: "grid calls", id: "calls-table"},
    h("thead", {}, h("tr", {}, ["Started", "Duration", "Caller", "Transport", "Locale",
      "Status", "Outcome", "Intent", "Queue", "Reason"].map((c) => h("th", {}, c)))),
    body);
  const more = h("button", {class: "button", id: "more-calls"}, "Load more");
  const foot = h("div", {class: "table-foot", hidden: true}, more);
  const count = h("span", {class: "muted", id: "calls-count"});
  view.replaceChildren(
    h("section", {class: "panel"}, h("div", {class: "panel-head"},
      h("h1", {}, "Calls"), count), form),
    h("section", {class: "panel flush"}, table, foot));

  const query = new URLSearchParams();
  for (const key of ["outcome", "status", "queue", "intent", "caller"]) {
    if (params.get(key)) query.set(key, params.get(key));
  }
  if (period) query.set("since", String(Date.now() / 1000 - Number(period) * 3600));
  let offset = 0, shown = 0;
  async function load() {
    query.set("limit", PAGE);
    query.set("offset", offset);
    const {calls} = await api(`calls?${query}`);
    for (const call of calls) body.append(callRow(call));
    offset += calls.length;
    shown += calls.length;
    foot.hidden = calls.length < PAGE;
    count.textContent = `${shown}${foot.hidden ? "" : "+"} call${shown === 1 ? "" : "s"}`;
    if (!shown) {
      body.append(h("tr", {}, h("td", {colspan: 10, class: "empty muted"},
        "No calls match these filters.")));
    }
  }
  more.addEventListener("click", () => load().catch((e) => toast(e.message)));
  await load();
}

function callRow(call) {
  const open = () => { window.location.hash = `#/call/${encodeURIComponent(call.call_id)}`; };
  return h("tr", {class: "clickable", "data-call-id": call.call_id, tabindex: 0, onclick: open,
    onkeydown: (e) => { if (e.key === "Enter") open(); }},
  h("td", {class: "nowrap"}, when(call.started_at)),
  h("td", {class: "num"}, duration(call)),
  h("td", {class: "mono"}, call.caller || ""),
  h("td", {}, call.transport || ""),
  h("td", {}, [call.locale, call.dialect].filter(Boolean).join(" · ")),
  h("td", {}, statusBadge(call.status)),
  h("td", {}, outcomeBadge(call.outcome)),
  h("td", {class: "mono"}, call.intent || ""),
  h("td", {class: "mono"}, call.queue || ""),
  h("td", {class: "mono"}, call.reason || ""));
}

// --- view: one call --------------------------------------------------------------------
async function callView(callId) {
  const view = document.getElementById("view");
  view.replaceChildren(h("p", {class: "muted"}, "Loading the call…"));
  const data = await api(`calls/${encodeURIComponent(callId)}`);
  const call = data.call;
  const audio = call.recording
    ? h("audio", {id: "recording", controls: true, preload: "metadata",
      src: `/console/api/calls/${encodeURIComponent(call.call_id)}/audio`})
    : null;

  const facts = [
    ["Call", call.call_id], ["Started", when(call.started_at)],
    ["Duration", duration(call)], ["Caller", call.caller], ["Transport", call.transport],
    ["Locale", [call.locale, call.dialect].filter(Boolean).join(" · ")],
    ["Model", call.model], ["Intent", call.intent], ["Queue", call.queue],
    ["Reason", call.reason]];
  const summary = h("section", {class: "panel", id: "call-summary"},
    h("div", {class: "panel-head"},
      h("h1", {}, "Call ", h("span", {class: "mono"}, call.call_id.slice(0, 12))),
      h("div", {class: "badges"}, statusBadge(call.status), outcomeBadge(call.outcome))),
    h("dl", {class: "facts"}, facts.filter(([, v]) => v).map(([k, v]) =>
      h("div", {}, h("dt", {}, k), h("dd", {class: k === "Call" ? "mono" : ""}, v)))),
    audio
      ? h("div", {class: "player"}, audio,
        h("p", {class: "muted small"},
          "Left channel: the caller · right channel: the engine. Digits typed or said " +
          "during card or PIN entry are silent in the recording."))
      : h("p", {class: "muted"}, "No recording for this call."));

  const turns = h("section", {class: "panel", id: "turns"},
    h("div", {class: "panel-head"}, h("h2", {}, "Timeline"),
      h("span", {class: "muted"}, `${data.turns.length - 1} turn(s)`)),
    h("ol", {class: "turns"}, data.turns.map((t) => turnItem(t, audio))));

  const events = h("section", {class: "panel"},
    h("details", {id: "events"}, h("summary", {}, `All ${data.events.length} events`),
      h("table", {class: "grid events"},
        h("thead", {}, h("tr", {}, ["#", "Time", "Kind", "Data"].map((c) => h("th", {}, c)))),
        h("tbody", {}, data.events.map((e) => h("tr", {},
          h("td", {class: "num"}, e.seq),
          h("td", {class: "num"}, `+${clock(e.at - call.started_at)}`),
          h("td", {class: "mono"}, e.kind),
          h("td", {class: "mono data"}, JSON.stringify(e.data))))))));

  const audit = h("section", {class: "panel"},
    h("details", {id: "audit"}, h("summary", {}, `Access log (${data.audit.length})`),
      h("ul", {class: "plain"}, data.audit.map((a) =>
        h("li", {}, `${when(a.at)} · ${a.user} · ${a.action}${a.detail ? ` ${a.detail}` : ""}`)))));

  view.replaceChildren(
    h("p", {}, h("a", {href: "#/calls", class: "back"}, "← All calls")),
    summary, turns, replayPanel(call), events, audit);
}

function turnItem(turn, audio) {
  const item = h("li", {class: "turn", "data-turn": turn.n});
  const head = h("div", {class: "turn-head"},
    h("span", {class: "turn-n"}, turn.n === 0 ? "Start" : `Turn ${turn.n}`),
    h("span", {class: "muted num"}, `+${clock(turn.offset_s)}`));
  item.append(head);

  if (turn.n > 0) {
    const input = turn.input || {};
    let said;
    if (input.say !== undefined) said = h("q", {class: "said"}, input.say || "…");
    else if (input.dtmf !== undefined) said = h("span", {class: "said"}, `keys ${input.dtmf}`);
    else if (input.silence) said = h("span", {class: "said muted"}, "(silence)");
    else if (input.hangup) said = h("span", {class: "said muted"}, "(hung up)");
    head.append(h("span", {class: "who"}, "Caller"), said || "",
      turn.dialect ? badge(turn.dialect, "muted") : "",
      turn.entry ? badge(`${turn.entry} entry`, "muted") : "");
    const span = turn.asr && turn.asr.audio_ms;
    if (audio && span && span.length === 2) {
      head.append(h("button", {class: "button small play", title: "Play this utterance",
        onclick: () => playSpan(audio, span[0], span[1])},
      `▶ ${clock(span[0] / 1000)}–${clock(span[1] / 1000)}`));
    }
    item.append(asrDetail(turn), nluDetail(turn));
    if (turn.actions && turn.actions.length) {
      item.append(h("div", {class: "detail"}, h("span", {class: "label"}, "Actions"),
        h("span", {class: "mono"}, turn.actions.join(" → "))));
    }
    if (turn.slots && Object.keys(turn.slots).length) {
      item.append(h("div", {class: "detail"}, h("span", {class: "label"}, "Slots"),
        h("span", {class: "mono"}, Object.entries(turn.slots)
          .map(([k, v]) => `${k}=${JSON.stringify(v)}`).join("  "))));
    }
  }
  for (const p of turn.prompts || []) {
    item.append(h("div", {class: `bot ${p.barged ? "barged" : ""}`.trim()},
      h("span", {class: "who"}, "Engine"), h("span", {class: "said"}, p.text || ""),
      p.name ? h("span", {class: "mono muted small"}, p.name) : "",
      p.barged ? badge("barged in", "warn") : ""));
  }
  const flags = [
    ...(turn.signals || []).map((x) => badge(`signal: ${x}`, "bad")),
    ...(turn.verification || []).map((x) => badge(`verification: ${x}`, "muted")),
    ...(turn.errors || []).map((x) => badge(`error: ${x}`, "bad")),
    turn.correction_of ? badge(`corrects ${turn.correction_of}`, "warn") : "",
    turn.route ? badge(`→ ${turn.route.queue} (${turn.route.reason})`, "warn") : "",
  ].filter(Boolean);
  if (flags.length) item.append(h("div", {class: "flags"}, flags));
  return item;
}

function asrDetail(turn) {
  const asr = turn.asr;
  if (!asr) return "";
  const alternatives = (asr.alternatives || []).map((a) =>
    h("span", {class: "alt"}, a.text || "∅", h("span", {class: "muted"}, ` ${conf(a.score)}`)));
  return h("div", {class: "detail"}, h("span", {class: "label"}, "ASR"),
    h("span", {}, "heard ", h("q", {}, asr.raw || "")),
    alternatives.length ? h("span", {class: "alts"}, "n-best: ", alternatives) : "");
}

function nluDetail(turn) {
  if (!turn.intent) return "";
  // The runners-up: how close the next intents came.
  const ranking = (turn.intent_ranking || []).filter((r) => r.name !== turn.intent).slice(0, 4);
  return h("div", {class: "detail"}, h("span", {class: "label"}, "NLU"),
    h("span", {class: "mono strong"}, turn.intent), h("span", {class: "num"}, conf(turn.confidence)),
    turn.normalized && turn.input && turn.normalized !== turn.input.say
      ? h("span", {class: "muted"}, "normalized ", h("q", {}, turn.normalized)) : "",
    ranking.length ? h("span", {class: "ranking"}, h("span", {class: "muted"}, "then"), ranking.map((r) =>
      h("span", {class: "rank", title: `${r.name} ${conf(r.confidence)}`},
        h("span", {class: "rank-bar", style: {"--w": `${Math.round(r.confidence * 100)}%`}}),
        h("span", {class: "mono"}, r.name), h("span", {class: "num muted"}, conf(r.confidence)))))
      : "");
}

function playSpan(audio, fromMs, toMs) {
  audio.currentTime = fromMs / 1000;
  const stop = () => {
    if (audio.currentTime >= toMs / 1000) { audio.pause(); audio.removeEventListener("timeupdate", stop); }
  };
  audio.addEventListener("timeupdate", stop);
  audio.play().catch((e) => toast(`Cannot play: ${e.message}`));
}

// --- replay ----------------------------------------------------------------------------
function replayPanel(call) {
  const choose = h("select", {id: "replay-model"},
    h("option", {value: ""}, "the latest trained model"));
  const run = h("button", {class: "button primary", id: "replay-run"}, "Replay");
  const out = h("div", {id: "replay-result"});
  const panel = h("section", {class: "panel", id: "replay"},
    h("div", {class: "panel-head"}, h("h2", {}, "Replay"),
      h("span", {class: "muted"}, "Run this call again against a model and see what would change.")),
    h("div", {class: "replay-controls"}, h("label", {class: "field"},
      h("span", {}, "Model"), choose), run),
    out);
  api(`calls/${encodeURIComponent(call.call_id)}/models`).then(({models}) => {
    for (const name of models) {
      const recorded = name === call.model || name === `${call.model}.tar.gz`;
      choose.append(h("option", {value: name}, recorded ? `${name} (this call's)` : name));
    }
  }).catch(() => {});
  run.addEventListener("click", async () => {
    run.disabled = true;
    out.replaceChildren(h("p", {class: "muted", id: "replay-busy"},
      "Replaying… (loading another model can take a minute)"));
    try {
      const result = await api(`calls/${encodeURIComponent(call.call_id)}/replay`,
        {method: "POST", body: {model: choose.value || null}});
      out.replaceChildren(replayDiff(result));
    } catch (e) {
      out.replaceChildren(h("p", {class: "form-error"}, `Replay failed: ${e.message}`));
    } finally {
      run.disabled = false;
    }
  });
  return panel;
}

function replayDiff(result) {
  const keys = ["outcome", "queue", "intent", "reason"];
  const summary = h("table", {class: "grid diff", id: "replay-summary"},
    h("thead", {}, h("tr", {}, h("th", {}, ""), h("th", {}, "Recorded"), h("th", {}, "Replayed"))),
    h("tbody", {}, keys.map((k) => {
      const a = (result.recorded || {})[k], b = (result.replayed || {})[k];
      return h("tr", {class: a === b ? "" : "changed"}, h("th", {}, k),
        h("td", {class: "mono"}, a ?? "–"), h("td", {class: "mono"}, b ?? "–"));
    })));
  const side = (x) => x ? [
    h("q", {}, x.heard ?? ""), " ", h("span", {class: "mono"}, x.intent || ""), " ",
    h("span", {class: "num muted"}, conf(x.confidence)),
    (x.prompt_names || []).length
      ? h("div", {class: "mono muted small"}, x.prompt_names.filter(Boolean).join(", ")) : "",
  ] : "–";
  const turns = h("table", {class: "grid diff", id: "replay-turns"},
    h("thead", {}, h("tr", {}, ["#", "Input", "Recorded", "Replayed"].map((c) => h("th", {}, c)))),
    h("tbody", {}, (result.turns || []).map((t) => h("tr", {class: t.differs ? "changed" : ""},
      h("td", {class: "num"}, t.n),
      h("td", {}, inputText(t.input, t.recorded)),
      h("td", {}, side(t.recorded)),
      h("td", {}, side(t.replayed), t.note ? h("div", {class: "muted small"}, t.note) : "")))));
  const changed = (result.turns || []).filter((t) => t.differs).length;
  return h("div", {class: "replay-diff"},
    h("div", {class: "badges"},
      result.route_changed ? badge("route changed", "bad") : badge("same route", "ok"),
      badge(`${changed} turn(s) differ`, changed ? "warn" : "muted"),
      badge(`from ${result.source}`, "muted"),
      badge(`model ${result.model || ""}`, "muted"),
      result.recorded_model ? badge(`recorded with ${result.recorded_model}`, "muted") : ""),
    summary, turns);
}

// A replayed turn's input: its kind ("say", "dtmf", ...) with what was recorded, or
// the logged input itself.
function inputText(input, recorded) {
  if (!input) return "";
  if (typeof input === "string") {
    const heard = recorded && recorded.heard;
    return [badge(input, "muted"), " ", heard ? (input === "dtmf" ? heard : h("q", {}, heard)) : ""];
  }
  if (input.say !== undefined) return h("q", {}, input.say);
  if (input.dtmf !== undefined) return `keys ${input.dtmf}`;
  if (input.silence) return "(silence)";
  if (input.hangup) return "(hung up)";
  return JSON.stringify(input);
}

// --- view: figures ---------------------------------------------------------------------
async function figuresView(params) {
  const view = document.getElementById("view");
  const hours = params.get("hours") || "24";
  const period = select("hours", "Period", PERIODS.filter(([v]) => v), hours);
  period.querySelector("select").addEventListener("change", (e) => {
    window.location.hash = `#/figures?hours=${e.target.value}`;
  });
  const body = h("div", {id: "figures"});
  view.replaceChildren(h("section", {class: "panel"},
    h("div", {class: "panel-head"}, h("h1", {}, "Figures"),
      h("span", {class: "muted", id: "figures-updated"})),
    h("div", {class: "filters"}, period)), body);

  async function draw() {
    const f = await api(`figures?hours=${encodeURIComponent(hours)}`);
    const kpi = (id, label, value, note) => h("div", {class: "kpi", id},
      h("div", {class: "kpi-value"}, value), h("div", {class: "kpi-label"}, label),
      note ? h("div", {class: "kpi-note muted"}, note) : "");
    const escalated = (f.outcome || {}).escalated || 0;
    const signals = Object.values(f.misroute_signals || {}).reduce((a, b) => a + b, 0);
    body.replaceChildren(
      h("section", {class: "kpis"},
        kpi("kpi-live", "Calls in progress", f.live_calls, "on this engine"),
        kpi("kpi-calls", "Calls", f.calls, `${f.ended} ended`),
        kpi("kpi-containment", "Containment", percent(f.containment), "self-served / ended"),
        kpi("kpi-escalated", "Escalated", escalated, ""),
        kpi("kpi-signals", "Misroute signals", signals, "corrections, no-match, low confidence…")),
      h("section", {class: "charts"},
        barChart("Outcomes", f.outcome, {id: "outcome"}),
        barChart("Escalations by queue", f.escalations_by_queue, {id: "queue", tone: "warn"}),
        barChart("Escalations by reason", f.escalations_by_reason, {id: "reason", tone: "warn"}),
        barChart("Misroute signals", f.misroute_signals, {id: "signals", tone: "bad"})));
    document.getElementById("figures-updated").textContent =
      `updated ${when(Date.now() / 1000).slice(11)} · every ${REFRESH_MS / 1000} s`;
  }
  await draw();
  refreshTimer = setInterval(() => draw().catch((e) => toast(e.message)), REFRESH_MS);
}

// --- view: trends ----------------------------------------------------------------------
const TREND_PERIODS = [["7", "Last 7 days"], ["30", "Last 30 days"], ["90", "Last 90 days (weekly)"],
  ["365", "Last year (weekly)"]];
const LOCALES = [["zh", "zh (Mandarin and dialects)"], ["ko", "ko (Korean)"]];

// A line chart of shares (0..1) per period; a period without data is a gap in the line.
function lineChart(title, periods, lines, options = {}) {
  const figure = h("figure", {class: "chart", "data-chart": options.id || ""},
    h("figcaption", {}, title));
  if (!lines.some((l) => l.values.some((v) => v !== null))) {
    figure.append(h("p", {class: "muted empty"}, "Nothing in this period"));
    return figure;
  }
  const width = 460, height = 170, left = 40, right = 10, top = 8, bottom = 24;
  const x = (i) => left + (periods.length > 1 ? i * (width - left - right) / (periods.length - 1)
    : (width - left - right) / 2);
  const y = (v) => top + (1 - v) * (height - top - bottom);
  const svg = s("svg", {viewBox: `0 0 ${width} ${height}`, class: "lines", role: "img",
    "aria-label": title});
  for (const tick of [0, 0.5, 1]) {
    svg.append(s("line", {x1: left, x2: width - right, y1: y(tick), y2: y(tick), class: "gridline"}));
    svg.append(s("text", {x: left - 6, y: y(tick) + 4, "text-anchor": "end", class: "axis"},
      `${tick * 100}%`));
  }
  const shown = new Set([0, Math.floor((periods.length - 1) / 2), periods.length - 1]);
  for (const i of shown) {  // the first and last label inside the chart's edges
    const anchor = periods.length > 1 && i === 0 ? "start"
      : periods.length > 1 && i === periods.length - 1 ? "end" : "middle";
    svg.append(s("text", {x: x(i), y: height - 6, "text-anchor": anchor, class: "axis"},
      periods[i].slice(5)));
  }
  lines.forEach((line, k) => {
    const g = s("g", {class: `line tone-${k}`, "data-line": line.name});
    let run = [];
    const flush = () => {
      if (run.length > 1) g.append(s("polyline", {points: run.join(" ")}));
      run = [];
    };
    line.values.forEach((v, i) => {
      if (v === null) return flush();
      run.push(`${x(i).toFixed(1)},${y(v).toFixed(1)}`);
      const dot = s("circle", {cx: x(i).toFixed(1), cy: y(v).toFixed(1), r: 3});
      dot.append(s("title", {}, `${line.name} ${periods[i]}: ${percent(v)}` +
        (line.counts ? ` (n=${line.counts[i]})` : "")));
      g.append(dot);
    });
    flush();
    svg.append(g);
  });
  figure.append(svg, h("div", {class: "legend"}, lines.map((l, k) =>
    h("span", {class: `key tone-${k}`}, l.name))));
  return figure;
}

function sparkline(values) {
  const width = 120, height = 24;
  const points = values.map((v, i) => v === null ? null :
    `${(values.length > 1 ? i * width / (values.length - 1) : width / 2).toFixed(1)},` +
    `${(2 + (1 - v) * (height - 4)).toFixed(1)}`);
  const svg = s("svg", {viewBox: `0 0 ${width} ${height}`, class: "spark"});
  let run = [];
  for (const p of [...points, null]) {
    if (p) { run.push(p); continue; }
    if (run.length > 1) svg.append(s("polyline", {points: run.join(" ")}));
    if (run.length === 1) {
      const [cx, cy] = run[0].split(",");
      svg.append(s("circle", {cx, cy, r: 2}));
    }
    run = [];
  }
  return svg;
}

function accuracyTable(id, title, rows) {
  const entries = Object.entries(rows).sort((a, b) => b[1].total.judged - a[1].total.judged);
  return h("figure", {class: "chart"}, h("figcaption", {}, title),
    entries.length ? h("table", {class: "grid compact", id},
      h("thead", {}, h("tr", {}, ["", "accuracy", "judged", "wrong", "pending", "over time"]
        .map((x) => h("th", {}, x)))),
      h("tbody", {}, entries.map(([name, v]) => h("tr", {"data-name": name},
        h("td", {}, name), h("td", {class: "num"}, percent(v.total.accuracy)),
        h("td", {class: "num"}, v.total.judged), h("td", {class: "num"}, v.total.wrong),
        h("td", {class: "num"}, v.total.pending), h("td", {}, sparkline(v.series))))))
      : h("p", {class: "muted empty"}, "Nothing in this period"));
}

function confusionTable(confusion) {
  const {labels, counts} = confusion;
  const figure = h("figure", {class: "chart wide"},
    h("figcaption", {}, "Confusion matrix of labelled utterances (rows: what the caller " +
      "meant, columns: what the engine understood)"));
  if (!labels.length) {
    figure.append(h("p", {class: "muted empty"}, "No utterance of this period is labelled yet"));
    return figure;
  }
  const max = Math.max(1, ...counts.flat());
  figure.append(h("div", {class: "scroll"}, h("table", {class: "confusion", id: "confusion"},
    h("thead", {}, h("tr", {}, h("th", {}, ""), labels.map((l) => h("th", {}, h("span", {}, l))))),
    h("tbody", {}, labels.map((row, i) => h("tr", {"data-row": row}, h("th", {}, row),
      counts[i].map((n, j) => h("td", {
        class: n ? (i === j ? "hit" : "miss") : "",
        "data-col": labels[j], title: `${row} → ${labels[j]}: ${n}`,
        style: n ? {"--level": (0.15 + 0.85 * n / max).toFixed(2)} : null,
      }, n || ""))))))));
  return figure;
}

async function trendsView(params) {
  const view = document.getElementById("view");
  const days = params.get("days") || "30";
  const locale = params.get("locale") || "zh";
  const form = h("form", {class: "filters"}, select("days", "Period", TREND_PERIODS, days),
    select("locale", "Locale", LOCALES, locale));
  form.addEventListener("change", () => {
    const q = new URLSearchParams(new FormData(form));
    window.location.hash = `#/trends?${q}`;
  });
  const t = await api(`trends?days=${encodeURIComponent(days)}&locale=${encodeURIComponent(locale)}`);
  const total = t.accuracy.total;
  const dialects = Object.entries(t.per_dialect).sort((a, b) => b[1].total.judged - a[1].total.judged)
    .slice(0, 5).map(([name, v]) => ({name, values: v.series, counts: v.judged}));
  const promotions = t.promotions.length ? h("table", {class: "grid compact", id: "promotions"},
    h("thead", {}, h("tr", {}, ["when", "model", "by", "held-out accuracy"].map((x) => h("th", {}, x)))),
    h("tbody", {}, t.promotions.map((p) => h("tr", {},
      h("td", {}, p.at), h("td", {class: "mono"}, p.model), h("td", {}, p.by),
      h("td", {class: "num"}, p.live === null || p.live === undefined ? percent(p.candidate)
        : `${percent(p.live)} → ${percent(p.candidate)}${p.forced ? " (forced)" : ""}`)))))
    : h("p", {class: "muted empty"}, "No model of this locale promoted yet");
  view.replaceChildren(h("section", {class: "panel"},
    h("div", {class: "panel-head"}, h("h1", {}, "Trends"),
      h("span", {class: "muted"}, `per ${t.bucket}, UTC · accuracy is estimated: labelled ` +
        "utterances as judged, unflagged ones as understood, flagged unlabelled ones pending")),
    form),
  h("section", {class: "kpis"},
    h("div", {class: "kpi", id: "kpi-accuracy"}, h("div", {class: "kpi-value"}, percent(total.accuracy)),
      h("div", {class: "kpi-label"}, "Estimated accuracy"),
      h("div", {class: "kpi-note muted"}, `${total.judged} utterances, ${total.wrong} wrong`)),
    h("div", {class: "kpi", id: "kpi-pending"}, h("div", {class: "kpi-value"}, total.pending),
      h("div", {class: "kpi-label"}, "Pending review"),
      h("div", {class: "kpi-note muted"}, "flagged, not labelled yet"))),
  h("section", {class: "charts", id: "trends"},
    lineChart("Containment and misroute rate", t.periods, [
      {name: "containment", values: t.containment, counts: t.calls},
      {name: "misroute rate", values: t.misroute_rate, counts: t.calls}], {id: "rates"}),
    lineChart("Estimated accuracy, by dialect", t.periods,
      [{name: "all", values: t.accuracy.series, counts: t.accuracy.judged}, ...dialects],
      {id: "accuracy"}),
    accuracyTable("per-intent", "Accuracy per intent (what the caller meant)", t.per_intent),
    accuracyTable("per-dialect", "Accuracy per dialect", t.per_dialect),
    confusionTable(t.confusion),
    h("figure", {class: "chart"}, h("figcaption", {}, "Promotions (held-out set)"), promotions)));
}

// --- view: review queue (trainers) -------------------------------------------------------
const REVIEW_PERIODS = [["24", "Last 24 hours"], ["168", "Last 7 days"], ["720", "Last 30 days"]];
const OUTCOME_TONES = {added: "ok", exists: "muted", masked: "warn", conflict: "bad"};

function reviewParams(params) {
  return {locale: params.get("locale") || "zh", hours: params.get("hours") || "168"};
}
function reviewQuery({locale, hours}) {
  return new URLSearchParams({locale, hours}).toString();
}

async function reviewView(params) {
  const view = document.getElementById("view");
  const at = reviewParams(params);
  const data = await api(`review?${reviewQuery(at)}`);
  const form = h("form", {class: "filters", id: "review-filters"},
    select("locale", "Locale", data.locales.map((l) => [l, l]), at.locale),
    select("hours", "Period", REVIEW_PERIODS, at.hours));
  form.addEventListener("change", () => {
    const next = new URLSearchParams(new FormData(form));
    window.location.hash = `#/review?${next}`;
  });
  const rows = data.clusters.map((c) => {
    const open = () => { window.location.hash = `#/review/${encodeURIComponent(c.id)}?${reviewQuery(at)}`; };
    return h("tr", {class: "clickable", "data-cluster": c.id, tabindex: 0, onclick: open,
      onkeydown: (e) => { if (e.key === "Enter") open(); }},
    h("td", {class: "num strong"}, c.calls),
    h("td", {class: "num"}, c.items),
    h("td", {class: "mono"}, c.intent),
    h("td", {class: "wordings"}, c.texts.map((t) => h("q", {class: "wording"}, t))),
    h("td", {}, h("span", {class: "badges"}, Object.entries(c.signals).map(([k, n]) =>
      badge(`${k} ×${n}`, "bad")))));
  });
  view.replaceChildren(
    h("section", {class: "panel"}, h("div", {class: "panel-head"}, h("h1", {}, "Review"),
      h("span", {class: "muted", id: "review-count"},
        `${data.clusters.length} cluster(s) · most calls affected first`)), form),
    h("section", {class: "panel flush"}, h("table", {class: "grid", id: "clusters"},
      h("thead", {}, h("tr", {}, ["Calls", "Utterances", "Understood as", "Wordings", "Signals"]
        .map((c) => h("th", {}, c)))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", {colspan: 5, class: "empty muted"},
        "Nothing to review yet."))))));
}

async function clusterView(clusterId, params) {
  const view = document.getElementById("view");
  const at = reviewParams(params);
  view.replaceChildren(h("p", {class: "muted"}, "Loading the cluster…"));
  const [cluster, options] = await Promise.all([
    api(`review/clusters/${encodeURIComponent(clusterId)}?${reviewQuery(at)}`),
    api(`review/options?locale=${encodeURIComponent(at.locale)}`)]);
  const post = (path, body) => api(path, {method: "POST",
    body: {locale: at.locale, hours: Number(at.hours), ...body}});

  // Label the whole cluster with an intent.
  const intent = intentSelect("label-intent", options.intents, cluster.intent);
  const labelButton = h("button", {class: "button primary", id: "label-cluster"}, "Label cluster");
  const labelOut = h("div", {id: "label-result"});
  labelButton.addEventListener("click", async () => {
    labelButton.disabled = true;
    try {
      const result = await post("review/label", {target: cluster.id, intent: intent.value});
      labelOut.replaceChildren(outcomeList(result));
    } catch (e) {
      labelOut.replaceChildren(h("p", {class: "form-error"}, e.message));
    } finally {
      labelButton.disabled = false;
    }
  });

  const snippet = h("audio", {id: "snippet", preload: "none"});
  const items = h("table", {class: "grid items", id: "items"},
    h("thead", {}, h("tr", {}, ["Call", "Heard", "Understood", "Then", ""].map((c) => h("th", {}, c)))),
    h("tbody", {}, cluster.items_detail.map((item) => itemRows(item, snippet, options, post)).flat()));

  view.replaceChildren(
    h("p", {}, h("a", {href: `#/review?${reviewQuery(at)}`, class: "back"}, "← Review queue")),
    h("section", {class: "panel", id: "cluster"},
      h("div", {class: "panel-head"},
        h("h1", {}, "Cluster ", h("span", {class: "mono"}, cluster.id)),
        h("div", {class: "badges"}, badge(`${cluster.calls} call(s)`, "warn"),
          badge(`${cluster.items} utterance(s)`, "muted"), badge(`understood as ${cluster.intent}`, "muted"))),
      h("p", {class: "wordings"}, cluster.texts.map((t) => h("q", {class: "wording"}, t))),
      h("div", {class: "filters"},
        h("label", {class: "field"}, h("span", {}, "What the callers meant"), intent), labelButton),
      labelOut),
    h("section", {class: "panel flush"}, items, snippet),
    options.dialects.length ? synonymPanel(cluster, options, post) : "");
}

function intentSelect(id, intents, current, blank) {
  return h("select", {id}, blank ? h("option", {value: ""}, blank) : "",
    intents.map((i) => h("option", {value: i, selected: i === current}, i)));
}

function outcomeList(result) {
  const counts = {};
  for (const o of result.outcomes) counts[o.status] = (counts[o.status] || 0) + 1;
  return h("div", {class: "outcomes"},
    h("p", {}, `Labelled as `, h("span", {class: "mono strong"}, result.intent || "–"), ": ",
      h("span", {class: "badges"}, Object.entries(counts).map(([k, n]) => badge(`${n} ${k}`, OUTCOME_TONES[k]))),
      result.file ? h("span", {class: "muted"}, ` → ${result.file}`) : ""),
    h("ul", {class: "plain"}, result.outcomes.map((o) => h("li", {"data-status": o.status},
      badge(o.status, OUTCOME_TONES[o.status]), " ", h("q", {}, o.text),
      o.detail ? h("span", {class: "muted"}, ` ${o.detail}`) : ""))));
}

function itemRows(item, snippet, options, post) {
  const asr = item.asr || {};
  const span = asr.audio_ms;
  const play = asr.recording && span && span.length === 2
    ? h("button", {class: "button small play", title: "Play this utterance", onclick: () => {
      // The recording route with a media fragment: the player stops at the span's end.
      snippet.src = `/console/api/calls/${encodeURIComponent(item.call_id)}/audio` +
        `#t=${(span[0] / 1000).toFixed(2)},${(span[1] / 1000).toFixed(2)}`;
      snippet.play().catch((e) => toast(`Cannot play: ${e.message}`));
    }}, `▶ ${clock(span[0] / 1000)}–${clock(span[1] / 1000)}`)
    : h("span", {class: "muted small"}, "no audio");
  const next = item.next || {};
  const then = [
    next.turn ? h("div", {}, "then ", inputText(next.turn.input),
      next.turn.intent ? h("span", {class: "mono muted"}, ` ${next.turn.intent}`) : "") : "",
    next.call ? h("div", {class: "badges"}, outcomeBadge(next.call.outcome),
      next.call.queue ? badge(`→ ${next.call.queue}`, "warn") : "",
      next.call.reason ? badge(next.call.reason, "muted") : "") : "",
    ...(next.feedback || []).map((f) => h("div", {class: "muted small"},
      `agent desktop: ${f.kind} ${f.from_queue || ""} → ${f.to_queue || ""}`)),
  ];
  const asrButton = h("button", {class: "button small", "data-action": "asr"}, "ASR error");
  const row = h("tr", {"data-item": item.key},
    h("td", {}, h("a", {href: `#/call/${encodeURIComponent(item.call_id)}`, class: "mono"},
      item.call_id.slice(0, 8)), h("div", {class: "muted small"}, `turn ${item.n} · ${when(item.started_at)}`)),
    h("td", {}, h("q", {class: "said"}, item.text), " ", play,
      asr.raw !== undefined ? h("div", {class: "muted small"}, "ASR ", h("q", {}, asr.raw),
        (asr.alternatives || []).length ? h("span", {class: "alts"}, " n-best: ",
          asr.alternatives.map((a) => h("span", {class: "alt"}, a.text || "∅"))) : "") : "",
      item.normalized && item.normalized !== item.text
        ? h("div", {class: "muted small"}, "normalized ", h("q", {}, item.normalized)) : "",
      item.dialect ? badge(item.dialect, "muted") : ""),
    h("td", {}, h("div", {}, h("span", {class: "mono strong"}, item.intent || "–"), " ",
      h("span", {class: "num"}, conf(item.confidence))),
    h("div", {class: "ranking"}, (item.ranking || []).filter((r) => r.name !== item.intent).map((r) =>
      h("span", {class: "rank", title: `${r.name} ${conf(r.confidence)}`},
        h("span", {class: "rank-bar", style: {"--w": `${Math.round(r.confidence * 100)}%`}}),
        h("span", {class: "mono"}, r.name), h("span", {class: "num muted"}, conf(r.confidence))))),
    h("div", {class: "flags"}, item.signals.map((x) => badge(x, "bad")))),
    h("td", {}, then),
    h("td", {}, asrButton));
  // The ASR-error form: what the caller really said (and, optionally, what they meant).
  const said = h("input", {class: "said-input", placeholder: "what the caller really said", value: item.text});
  const meant = intentSelect("", options.intents, null, "no example (a label only)");
  const save = h("button", {class: "button small primary"}, "Save ASR error");
  const out = h("span", {class: "asr-result"});
  const form = h("tr", {class: "asr-form", hidden: true}, h("td", {}), h("td", {colspan: 4},
    h("div", {class: "filters"}, said, meant, save, out)));
  asrButton.addEventListener("click", () => { form.hidden = !form.hidden; });
  save.addEventListener("click", async () => {
    save.disabled = true;
    try {
      const result = await post("review/asr", {item: item.key, said: said.value, intent: meant.value || null});
      out.replaceChildren(badge("ASR error recorded", "ok"),
        ...result.outcomes.map((o) => badge(o.status, OUTCOME_TONES[o.status])));
    } catch (e) {
      out.replaceChildren(h("span", {class: "form-error"}, e.message));
    } finally {
      save.disabled = false;
    }
  });
  return [row, form];
}

function synonymPanel(cluster, options, post) {
  const key = h("input", {id: "synonym-key", placeholder: "as said, e.g. 咭"});
  const mandarin = h("input", {id: "synonym-mandarin", placeholder: "in Mandarin, e.g. 卡"});
  const dialect = h("select", {id: "synonym-dialect"}, options.dialects.map((d) =>
    h("option", {value: d}, d === "asr" ? "asr (a near-homophone)" : d)));
  const force = h("input", {type: "checkbox", id: "synonym-force"});
  // Labelling the cluster with it takes its utterances out of the queue.
  const label = h("input", {type: "checkbox", id: "synonym-label", checked: true});
  const add = h("button", {class: "button primary", id: "synonym-add"}, "Add synonym");
  const out = h("div", {id: "synonym-result"});
  add.addEventListener("click", async () => {
    add.disabled = true;
    try {
      const r = await post("review/synonym", {key: key.value, mandarin: mandarin.value,
        dialect: dialect.value, target: label.checked ? cluster.id : null, force: force.checked});
      out.replaceChildren(h("p", {}, badge("added", "ok"), " ", h("q", {}, r.key), " → ",
        h("q", {}, r.mandarin), h("span", {class: "muted"}, ` (${r.dialect}) in ${r.file}; ` +
          "takes effect at the next training")));
    } catch (e) {
      out.replaceChildren(h("p", {class: "form-error"}, e.message));
    } finally {
      add.disabled = false;
    }
  });
  return h("section", {class: "panel", id: "synonym"},
    h("div", {class: "panel-head"}, h("h2", {}, "Dialect synonym or near-homophone"),
      h("span", {class: "muted"}, "Instead of an example: teach the normaliser a word, for every intent.")),
    h("div", {class: "filters"},
      h("label", {class: "field"}, h("span", {}, "Phrase"), key),
      h("label", {class: "field"}, h("span", {}, "Mandarin"), mandarin),
      h("label", {class: "field"}, h("span", {}, "Dialect"), dialect),
      h("label", {class: "field check"}, label, h("span", {}, "label this cluster with it")),
      h("label", {class: "field check"}, force, h("span", {}, "add even if it rewrites Mandarin examples")),
      add),
    out);
}

// --- view: model (trainers): train, compare, promote ------------------------------------
async function modelView(params) {
  const view = document.getElementById("view");
  const state = await api("models");
  const locales = Object.keys(state.locales);
  // Default: the locale of the latest run, else the first this server serves.
  const locale = params.get("locale") || (state.training && state.training.locale) ||
    locales.find((l) => state.locales[l].serving) || locales[0];
  const pick = select("locale", "Locale", locales.map((l) => [l, l]), locale);
  pick.querySelector("select").addEventListener("change", (e) => {
    window.location.hash = `#/model?locale=${encodeURIComponent(e.target.value)}`;
  });

  const live = h("table", {class: "grid", id: "live-models"},
    h("thead", {}, h("tr", {}, ["Locale", "Live (models/live.yml)", "Serving now", "Newest candidate"]
      .map((c) => h("th", {}, c)))),
    h("tbody", {}, locales.map((l) => {
      const m = state.locales[l];
      return h("tr", {"data-locale": l}, h("td", {}, l), h("td", {class: "mono live"}, m.live || "–"),
        h("td", {class: "mono serving"}, m.serving || "–"),
        h("td", {class: "mono candidate"}, m.candidate || "–"));
    })));

  // Training, with progress polled while it runs.
  const finetune = h("input", {type: "checkbox", id: "train-finetune"});
  const train = h("button", {class: "button primary", id: "train", disabled: !state.can_train}, "Train");
  const bar = h("progress", {id: "train-progress", max: 1, value: 0});
  const status = h("span", {id: "train-status", class: "muted"});
  const showTraining = (t) => {
    if (!t) { status.textContent = "No training run yet."; return; }
    const epochs = t.epochs ? ` · epoch ${t.epoch}/${t.epochs}` : "";
    // Done: the model's file name (the phase line names the server's own path).
    const phase = t.state === "done" && t.model
      ? `model ${t.trained ? "trained" : "up to date"}: ${t.model.split("/").pop()}` : t.phase;
    bar.max = t.epochs || 1;
    bar.value = t.state === "done" ? bar.max : t.epoch;
    status.textContent = `${t.locale}: ${t.state} · ${phase}${epochs}` +
      (t.duration_s ? ` · ${t.duration_s} s` : "") + (t.error ? ` · ${t.error}` : "");
    status.dataset.state = t.state;
    train.disabled = t.state === "running" || t.state === "queued";
  };
  const poll = () => {
    clearInterval(refreshTimer);
    refreshTimer = setInterval(async () => {
      try {
        const t = await api("train");
        showTraining(t);
        if (t && (t.state === "done" || t.state === "failed")) {
          clearInterval(refreshTimer);
          if (t.state === "done") window.dispatchEvent(new HashChangeEvent("hashchange"));
        }
      } catch (e) { toast(e.message); }
    }, 1000);
  };
  showTraining(state.training);
  if (state.training && state.training.state === "running") poll();
  train.addEventListener("click", async () => {
    train.disabled = true;
    try {
      showTraining(await api("train", {method: "POST", body: {locale, finetune: finetune.checked}}));
      poll();
    } catch (e) {
      train.disabled = false;
      toast(e.message);
    }
  });

  // Compare the candidate with the live model; promote it (the gate, or force).
  const models = state.locales[locale].models;
  const candidate = h("select", {id: "candidate"}, models.map((m) =>
    h("option", {value: m, selected: m === state.locales[locale].candidate},
      m === state.locales[locale].live ? `${m} (live)` : m)));
  const compareButton = h("button", {class: "button", id: "compare"}, "Compare with live");
  const force = h("input", {type: "checkbox", id: "promote-force"});
  const promoteButton = h("button", {class: "button primary", id: "promote"}, "Promote");
  const compared = h("div", {id: "compare-result"});
  const promoted = h("div", {id: "promote-result"});
  const busy = async (button, out, message, work) => {
    button.disabled = true;
    out.replaceChildren(h("p", {class: "muted"}, message));
    try { await work(); } catch (e) {
      out.replaceChildren(h("p", {class: "form-error", id: "model-error"}, e.message));
    } finally { button.disabled = false; }
  };
  compareButton.addEventListener("click", () => busy(compareButton, compared,
    "Comparing… (both models load and parse every test utterance: a minute or two)", async () => {
      compared.replaceChildren(comparisonTables(await api("compare", {method: "POST",
        body: {locale, model: candidate.value}})));
    }));
  promoteButton.addEventListener("click", () => busy(promoteButton, promoted,
    "Promoting… (the gate compares on the held-out set, then the model loads)", async () => {
      const r = await api("promote", {method: "POST",
        body: {locale, model: candidate.value, force: force.checked}});
      const p = r.promotion;
      promoted.replaceChildren(h("div", {id: "promotion"},
        h("p", {}, badge("promoted", "ok"), " ", h("span", {class: "mono"}, p.model),
          h("span", {class: "muted"}, ` (was ${p.previous || "–"}) by ${p.by}${p.forced ? ", forced" : ""}`)),
        p.heldout ? h("p", {class: "muted"}, `held-out accuracy ${p.heldout.live.toFixed(3)} → ` +
          `${p.heldout.candidate.toFixed(3)} (${signed(p.heldout.delta)})`) : "",
        r.swap ? h("p", {id: "swap"}, r.swap.error
          ? h("span", {class: "form-error"}, `not swapped into this server: ${r.swap.error}`)
          : `This server now serves ${r.swap.model}` + (r.swap.swapped
            ? `; calls in progress finish on ${r.swap.previous}.` : " (already).")) : ""));
      const row = document.querySelector(`#live-models tr[data-locale="${locale}"]`);
      row.querySelector(".live").textContent = p.model;
      row.querySelector(".candidate").textContent = "–";
      if (r.swap && r.swap.model) row.querySelector(".serving").textContent = r.swap.model;
    }));

  view.replaceChildren(
    h("section", {class: "panel"}, h("div", {class: "panel-head"}, h("h1", {}, "Models")), live),
    h("section", {class: "panel", id: "training"},
      h("div", {class: "panel-head"}, h("h2", {}, "Train"),
        h("span", {class: "muted"}, "A candidate from the current data and labels; the live model keeps serving.")),
      h("div", {class: "filters"}, pick,
        h("label", {class: "field check"}, finetune, h("span", {}, "fine-tune the live model (faster)")),
        train),
      h("div", {class: "progress"}, bar, status)),
    h("section", {class: "panel", id: "compare-promote"},
      h("div", {class: "panel-head"}, h("h2", {}, "Compare and promote"),
        h("span", {class: "muted"}, "A candidate worse on the held-out set is promoted only when forced.")),
      h("div", {class: "filters"},
        h("label", {class: "field"}, h("span", {}, "Candidate"), candidate), compareButton,
        h("label", {class: "field check"}, force, h("span", {}, "force (promote even if worse)")),
        promoteButton),
      promoted, compared));
}

function signed(x) { return `${x >= 0 ? "+" : ""}${x.toFixed(3)}`; }

function comparisonTables(result) {
  const row = (label, v, extra) => h("tr", {class: v.delta < 0 ? "worse" : v.delta > 0 ? "better" : ""},
    h("th", {}, label), h("td", {class: "num"}, v.live.toFixed(3)),
    h("td", {class: "num"}, v.candidate.toFixed(3)),
    h("td", {class: "num delta"}, signed(v.delta)), h("td", {class: "num muted"}, extra ?? ""));
  const sets = Object.entries(result.sets).map(([name, c]) => h("table",
    {class: "grid comparison", "data-set": name},
    h("caption", {}, `${name === "heldout" ? "Held-out set" : "Labelled utterances"} (${c.examples})`),
    h("thead", {}, h("tr", {}, ["", "live", "candidate", "delta", "n"].map((x) => h("th", {}, x)))),
    h("tbody", {}, row("intent accuracy", c.accuracy), row("dialect / ASR part", c.dialect_and_asr_accuracy),
      Object.entries(c.per_form).map(([k, v]) => row(`form ${k}`, v, v.n)),
      Object.entries(c.per_intent).filter(([, v]) => v.delta !== 0).map(([k, v]) => row(k, v, v.n)))));
  return h("div", {id: "comparison"},
    h("p", {class: "muted"}, "live ", h("span", {class: "mono"}, result.live), " · candidate ",
      h("span", {class: "mono"}, result.candidate), " · intents whose accuracy did not change are not listed"),
    h("div", {class: "comparisons"}, sets));
}

// --- routing ---------------------------------------------------------------------------
async function route() {
  clearInterval(refreshTimer);
  refreshTimer = null;
  const [path, query] = (window.location.hash.slice(1) || "/calls").split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean);
  const name = parts[0] || "calls";
  for (const tab of document.querySelectorAll(".tabs a")) {
    tab.classList.toggle("active", tab.dataset.view === (name === "call" ? "calls" : name));
  }
  try {
    if (name === "call" && parts[1]) await callView(decodeURIComponent(parts[1]));
    else if (name === "figures") await figuresView(params);
    else if (name === "trends") await trendsView(params);
    else if (name === "review" && parts[1]) await clusterView(decodeURIComponent(parts[1]), params);
    else if (name === "review") await reviewView(params);
    else if (name === "model") await modelView(params);
    else await callsView(params);
  } catch (e) {
    if (e.status === 401) return;
    document.getElementById("view").replaceChildren(h("section", {class: "panel"},
      h("p", {class: "form-error"}, e.message)));
  }
}

async function start() {
  Object.assign(me, await api("me"));
  document.getElementById("user-name").textContent = me.name;
  document.getElementById("user-role").textContent = me.role;
  // data-role: the roles (space-separated) that see the element
  for (const el of document.querySelectorAll("[data-role]")) {
    el.hidden = !el.dataset.role.split(" ").includes(me.role);
  }
  document.getElementById("logout").addEventListener("click", async () => {
    await api("logout", {method: "POST"}).catch(() => {});
    window.location.assign("/console/login");
  });
  window.addEventListener("hashchange", route);
  await route();
}

start().catch((e) => { if (e.status !== 401) toast(e.message); });
