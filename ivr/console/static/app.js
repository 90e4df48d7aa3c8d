// The ops console: calls, a call's timeline and replay, live figures.
// One page, three views chosen by the URL's hash (#/calls?..., #/call/ID, #/figures).
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
        h("li", {}, `${when(a.at)} · ${a.user} · ${a.action}`)))));

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

// --- view: review (trainers; the labelling pages come later) ----------------------------
async function reviewView() {
  const {items} = await api("review");
  document.getElementById("view").replaceChildren(h("section", {class: "panel"},
    h("h1", {}, "Review"),
    h("p", {class: "muted"}, items.length ? `${items.length} item(s)` : "Nothing to review yet.")));
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
    else if (name === "review") await reviewView();
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
  for (const el of document.querySelectorAll("[data-role]")) el.hidden = el.dataset.role !== me.role;
  document.getElementById("logout").addEventListener("click", async () => {
    await api("logout", {method: "POST"}).catch(() => {});
    window.location.assign("/console/login");
  });
  window.addEventListener("hashchange", route);
  await route();
}

start().catch((e) => { if (e.status !== 401) toast(e.message); });
