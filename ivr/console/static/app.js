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
const PERIODS = [["1", "period.hour"], ["24", "period.day"], ["168", "period.week"],
  ["720", "period.month"], ["", "period.all"]];
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
// Every time on the page is the bank's (i18n.js), the zone named in the top bar.
function when(unix) { return bankTime(unix); }
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

function badge(text, kind, title) {
  return text ? h("span", {class: `badge ${kind || ""}`.trim(), title}, text) : "";
}
// A name (intent, queue, reason...) by its label, the name itself on hover.
function named(kind, name, cls) {
  if (name === null || name === undefined || name === "") return "";
  return h("span", {class: cls || "", title: name, "data-name": name}, labelText(kind, name));
}
function outcomeBadge(outcome) {
  const kinds = {self_service: "ok", escalated: "warn", hangup: "muted"};
  return badge(labelText("outcome", outcome), kinds[outcome], outcome);
}
function statusBadge(status) {
  const kinds = {live: "live", complete: "", incomplete: "bad"};
  return badge(labelText("status", status), kinds[status], status);
}

function toast(message) {
  const el = document.getElementById("toast");
  el.textContent = message;
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.hidden = true; }, 6000);
}

// A refusal from the server: its message, then how to go on in the page's words (the
// remedy's code, never the CLI's flags).
class ApiError extends Error {
  constructor(status, message, remedy) {
    super(remedy ? `${message} ${t(`remedy.${remedy}`)}` : message);
    this.status = status;
    this.remedy = remedy;
  }
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
    throw new ApiError(401, t("error.signed_out"));
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, body.error || response.statusText, body.remedy);
  return body;
}

// --- charts: horizontal bars in inline SVG ---------------------------------------------
function barChart(title, data, options = {}) {
  const entries = Object.entries(data || {}).sort((a, b) => b[1] - a[1]);
  const figure = h("figure", {class: "chart", "data-chart": options.id || ""},
    h("figcaption", {}, title, csvButton(options.id || "chart",
      () => [[t("csv.name"), t("csv.label"), t("csv.value")],
        ...entries.map(([name, value]) => [name, labelText(options.kind, name), value])])));
  if (!entries.length) {
    figure.append(h("p", {class: "muted empty"}, t("chart.empty")));
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
    // The label on the bar, the engine's own name on hover (an SVG title).
    g.append(s("title", {}, `${label}: ${value}`));
    g.append(s("text", {x: labelW - 8, y: y + row / 2 + 4, "text-anchor": "end",
      class: "bar-label", "data-name": label}, labelText(options.kind, label)));
    g.append(s("rect", {x: labelW, y: y + 4, width: w, height: row - 8, rx: 3}));
    g.append(s("text", {x: labelW + w + 6, y: y + row / 2 + 4, class: "bar-value"},
      String(value)));
    svg.append(g);
  });
  figure.append(svg);
  return figure;
}

// Columns over fixed slots (the 24 hours of the bank's day): every slot is drawn, so one
// day of data reads as well as a year's.
function columnChart(title, values, options = {}) {
  const figure = h("figure", {class: "chart wide", "data-chart": options.id || ""},
    h("figcaption", {}, title, csvButton(options.id || "chart",
      () => [[t("csv.slot"), t("csv.value")], ...values.map((v, i) => [options.slot(i), v])])));
  if (!values.some((v) => v)) {
    figure.append(h("p", {class: "muted empty"}, t("chart.empty")));
    return figure;
  }
  const width = 720, height = 170, left = 30, bottom = 22, top = 14;
  const step = (width - left) / values.length;
  const max = Math.max(...values);
  const svg = s("svg", {viewBox: `0 0 ${width} ${height}`, class: "columns", role: "img",
    "aria-label": title});
  for (const tick of [0, max]) {
    const y = top + (1 - tick / max) * (height - top - bottom);
    svg.append(s("line", {x1: left, x2: width, y1: y, y2: y, class: "gridline"}));
    svg.append(s("text", {x: left - 4, y: y + 4, "text-anchor": "end", class: "axis"}, String(tick)));
  }
  values.forEach((v, i) => {
    const hgt = (height - top - bottom) * v / max;
    const x = left + i * step;
    const g = s("g", {class: `column ${options.tone || ""}`.trim(), "data-slot": i});
    g.append(s("title", {}, `${options.slot(i)}: ${v}`));
    g.append(s("rect", {x: x + 2, y: height - bottom - hgt, width: step - 4, height: Math.max(hgt, 0), rx: 2}));
    if (v) {
      g.append(s("text", {x: x + step / 2, y: height - bottom - hgt - 3, "text-anchor": "middle",
        class: "bar-value"}, String(v)));
    }
    if (i % 3 === 0) {
      g.append(s("text", {x: x + step / 2, y: height - 6, "text-anchor": "middle", class: "axis"},
        String(i)));
    }
    svg.append(g);
  });
  figure.append(svg);
  return figure;
}

// --- CSV: any table or chart, as the staff's spreadsheet opens it ------------------------
function csvText(rows) {
  const cell = (v) => {
    const text = v === null || v === undefined ? "" : String(v);
    return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  };
  // A byte-order mark, so Excel reads the Chinese as UTF-8 (as ivr report voc writes it).
  return "\ufeff" + rows.map((r) => r.map(cell).join(",")).join("\r\n") + "\r\n";
}
function tableRows(table) {
  return [...table.querySelectorAll("tr")].map((tr) =>
    [...tr.querySelectorAll("th, td")].map((c) => c.innerText.trim()));
}
// A button that downloads `source` (a table element, or a function giving rows) as NAME.csv.
function csvButton(name, source) {
  return h("button", {type: "button", class: "button small csv", "data-csv": name,
    title: t("csv.title"), onclick: (event) => {
      event.stopPropagation();
      const rows = typeof source === "function" ? source() : tableRows(source);
      const url = URL.createObjectURL(new Blob([csvText(rows)], {type: "text/csv;charset=utf-8"}));
      const link = h("a", {href: url, download: `${name}.csv`, hidden: true});
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    }}, t("csv.button"));
}

// --- view: calls -----------------------------------------------------------------------
function select(name, label, values, current) {
  return h("label", {class: "field"}, h("span", {}, label),
    h("select", {name, id: `filter-${name}`},
      values.map(([value, text]) => h("option", {value, selected: value === current}, text))));
}
// Options of names by their labels, after an "any" option.
function anyOf(kind, names) {
  return [["", t("filter.any")], ...names.map((n) => [n, labelText(kind, n)])];
}
function periods(list) { return list.map(([value, key]) => [value, t(key)]); }

async function callsView(params) {
  const view = document.getElementById("view");
  const period = params.has("hours") ? params.get("hours") : "24";
  const form = h("form", {class: "filters", id: "filters"},
    select("hours", t("field.period"), periods(PERIODS), period),
    select("outcome", t("field.outcome"), anyOf("outcome", OUTCOMES), params.get("outcome") || ""),
    select("status", t("field.status"), anyOf("status", STATUSES), params.get("status") || ""),
    select("queue", t("field.queue"), anyOf("queue", QUEUES), params.get("queue") || ""),
    h("label", {class: "field"}, h("span", {}, t("field.intent")),
      h("input", {name: "intent", id: "filter-intent", list: "intents",
        value: params.get("intent") || "", placeholder: t("filter.any_lower")})),
    h("datalist", {id: "intents"}, INTENTS.map((i) => h("option", {value: i}, labelText("intent", i)))),
    h("label", {class: "field"}, h("span", {}, t("field.caller")),
      h("input", {name: "caller", id: "filter-caller", value: params.get("caller") || "",
        placeholder: "+86…"})),
    h("div", {class: "field actions"},
      h("button", {type: "submit", class: "button primary", id: "apply-filters"}, t("filter.apply")),
      h("a", {href: "#/calls", class: "button"}, t("filter.reset"))));
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
    h("thead", {}, h("tr", {}, ["field.started", "field.duration", "field.caller", "field.transport",
      "field.locale", "field.status", "field.outcome", "field.intent", "field.queue", "field.reason"]
      .map((c) => h("th", {}, t(c))))),
    body);
  const more = h("button", {class: "button", id: "more-calls"}, t("calls.more"));
  const foot = h("div", {class: "table-foot", hidden: true}, more);
  const count = h("span", {class: "muted", id: "calls-count"});
  view.replaceChildren(
    h("section", {class: "panel"}, h("div", {class: "panel-head"},
      h("h1", {}, t("calls.title")), count, csvButton("calls", table)), form),
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
    count.textContent = t(shown === 1 ? "calls.count_one" : "calls.count",
      {n: `${shown}${foot.hidden ? "" : "+"}`});
    if (!shown) {
      body.append(h("tr", {}, h("td", {colspan: 10, class: "empty muted"}, t("calls.none"))));
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
  h("td", {}, named("transport", call.transport)),
  h("td", {}, [call.locale, call.dialect].filter(Boolean).join(" · ")),
  h("td", {}, statusBadge(call.status)),
  h("td", {}, outcomeBadge(call.outcome)),
  h("td", {}, named("intent", call.intent)),
  h("td", {}, named("queue", call.queue)),
  h("td", {}, named("reason", call.reason)));
}

// --- view: one call --------------------------------------------------------------------
async function callView(callId) {
  const view = document.getElementById("view");
  view.replaceChildren(h("p", {class: "muted"}, t("call.loading")));
  const data = await api(`calls/${encodeURIComponent(callId)}`);
  const call = data.call;
  const audio = call.recording
    ? h("audio", {id: "recording", controls: true, preload: "metadata",
      src: `/console/api/calls/${encodeURIComponent(call.call_id)}/audio`})
    : null;

  const facts = [
    ["field.call", call.call_id, true], ["field.started", when(call.started_at)],
    ["field.duration", duration(call)], ["field.caller", call.caller],
    ["field.transport", call.transport && named("transport", call.transport)],
    ["field.locale", [call.locale, call.dialect].filter(Boolean).join(" · ")],
    ["field.model", call.model], ["field.intent", call.intent && named("intent", call.intent)],
    ["field.queue", call.queue && named("queue", call.queue)],
    ["field.reason", call.reason && named("reason", call.reason)]];
  const summary = h("section", {class: "panel", id: "call-summary"},
    h("div", {class: "panel-head"},
      h("h1", {}, t("call.title"), " ", h("span", {class: "mono"}, call.call_id.slice(0, 12))),
      h("div", {class: "badges"}, statusBadge(call.status), outcomeBadge(call.outcome))),
    h("dl", {class: "facts"}, facts.filter(([, v]) => v).map(([k, v, mono]) =>
      h("div", {}, h("dt", {}, t(k)), h("dd", {class: mono ? "mono" : ""}, v)))),
    audio
      ? h("div", {class: "player"}, audio, h("p", {class: "muted small"}, t("call.channels")))
      : h("p", {class: "muted"}, t("call.no_recording")));

  const turns = h("section", {class: "panel", id: "turns"},
    h("div", {class: "panel-head"}, h("h2", {}, t("call.timeline")),
      h("span", {class: "muted"}, t("call.turns", {n: data.turns.length - 1}))),
    h("ol", {class: "turns"}, data.turns.map((turn) => turnItem(turn, audio))));

  const eventTable = h("table", {class: "grid events"},
    h("thead", {}, h("tr", {}, ["#", t("field.time"), t("field.kind"), t("field.data")]
      .map((c) => h("th", {}, c)))),
    h("tbody", {}, data.events.map((e) => h("tr", {},
      h("td", {class: "num"}, e.seq),
      h("td", {class: "num"}, `+${clock(e.at - call.started_at)}`),
      h("td", {class: "mono"}, e.kind),
      h("td", {class: "mono data"}, JSON.stringify(e.data))))));
  const events = h("section", {class: "panel"},
    h("details", {id: "events"}, h("summary", {}, t("call.events", {n: data.events.length}), " ",
      csvButton(`events-${call.call_id.slice(0, 12)}`, eventTable)), eventTable));

  const audit = h("section", {class: "panel"},
    h("details", {id: "audit"}, h("summary", {}, t("call.audit", {n: data.audit.length})),
      h("ul", {class: "plain"}, data.audit.map((a) =>
        h("li", {}, `${when(a.at)} · ${a.user} · ${a.action}${a.detail ? ` ${a.detail}` : ""}`)))));

  view.replaceChildren(
    h("p", {}, h("a", {href: "#/calls", class: "back"}, t("call.back"))),
    summary, turns, replayPanel(call), events, audit);
}

function turnItem(turn, audio) {
  const item = h("li", {class: "turn", "data-turn": turn.n});
  const head = h("div", {class: "turn-head"},
    h("span", {class: "turn-n"}, turn.n === 0 ? t("turn.start") : t("turn.n", {n: turn.n})),
    h("span", {class: "muted num"}, `+${clock(turn.offset_s)}`));
  item.append(head);

  if (turn.n > 0) {
    const input = turn.input || {};
    let said;
    if (input.say !== undefined) said = h("q", {class: "said"}, input.say || "…");
    else if (input.dtmf !== undefined) said = h("span", {class: "said"}, t("input.keys", {keys: input.dtmf}));
    else if (input.silence) said = h("span", {class: "said muted"}, t("input.silence"));
    else if (input.hangup) said = h("span", {class: "said muted"}, t("input.hangup"));
    head.append(h("span", {class: "who"}, t("turn.caller")), said || "",
      turn.dialect ? badge(turn.dialect, "muted") : "",
      turn.entry ? badge(t("turn.entry", {entry: turn.entry}), "muted") : "");
    const span = turn.asr && turn.asr.audio_ms;
    if (audio && span && span.length === 2) {
      head.append(h("button", {class: "button small play", title: t("turn.play"),
        onclick: () => playSpan(audio, span[0], span[1])},
      `▶ ${clock(span[0] / 1000)}–${clock(span[1] / 1000)}`));
    }
    item.append(asrDetail(turn), nluDetail(turn));
    if (turn.actions && turn.actions.length) {
      item.append(h("div", {class: "detail"}, h("span", {class: "label"}, t("turn.actions")),
        h("span", {class: "mono"}, turn.actions.join(" → "))));
    }
    if (turn.slots && Object.keys(turn.slots).length) {
      item.append(h("div", {class: "detail"}, h("span", {class: "label"}, t("turn.slots")),
        h("span", {class: "mono"}, Object.entries(turn.slots)
          .map(([k, v]) => `${k}=${JSON.stringify(v)}`).join("  "))));
    }
  }
  for (const p of turn.prompts || []) {
    item.append(h("div", {class: `bot ${p.barged ? "barged" : ""}`.trim()},
      h("span", {class: "who"}, t("turn.engine")), h("span", {class: "said"}, p.text || ""),
      p.name ? h("span", {class: "mono muted small"}, p.name) : "",
      p.barged ? badge(t("turn.barged"), "warn") : ""));
  }
  const flags = [
    ...(turn.signals || []).map((x) => badge(t("turn.signal", {signal: labelText("signal", x)}), "bad", x)),
    ...(turn.verification || []).map((x) => badge(t("turn.verification", {state: x}), "muted")),
    ...(turn.errors || []).map((x) => badge(t("turn.error", {error: x}), "bad")),
    turn.correction_of ? badge(t("turn.corrects", {intent: labelText("intent", turn.correction_of)}),
      "warn", turn.correction_of) : "",
    turn.route ? badge(`→ ${labelText("queue", turn.route.queue)} (${labelText("reason", turn.route.reason)})`,
      "warn", `${turn.route.queue} (${turn.route.reason})`) : "",
  ].filter(Boolean);
  if (flags.length) item.append(h("div", {class: "flags"}, flags));
  return item;
}

function asrDetail(turn) {
  const asr = turn.asr;
  if (!asr) return "";
  const alternatives = (asr.alternatives || []).map((a) =>
    h("span", {class: "alt"}, a.text || "∅", h("span", {class: "muted"}, ` ${conf(a.score)}`)));
  return h("div", {class: "detail"}, h("span", {class: "label"}, t("turn.asr")),
    h("span", {}, t("turn.heard"), " ", h("q", {}, asr.raw || "")),
    alternatives.length ? h("span", {class: "alts"}, t("turn.nbest"), " ", alternatives) : "");
}

function nluDetail(turn) {
  if (!turn.intent) return "";
  // The runners-up: how close the next intents came.
  const ranking = (turn.intent_ranking || []).filter((r) => r.name !== turn.intent).slice(0, 4);
  return h("div", {class: "detail"}, h("span", {class: "label"}, t("turn.nlu")),
    named("intent", turn.intent, "strong"), h("span", {class: "num"}, conf(turn.confidence)),
    turn.normalized && turn.input && turn.normalized !== turn.input.say
      ? h("span", {class: "muted"}, t("turn.normalized"), " ", h("q", {}, turn.normalized)) : "",
    ranking.length ? h("span", {class: "ranking"}, h("span", {class: "muted"}, t("turn.then")), ranking.map((r) =>
      h("span", {class: "rank", title: `${r.name} ${conf(r.confidence)}`},
        h("span", {class: "rank-bar", style: {"--w": `${Math.round(r.confidence * 100)}%`}}),
        h("span", {}, labelText("intent", r.name)), h("span", {class: "num muted"}, conf(r.confidence)))))
      : "");
}

function playSpan(audio, fromMs, toMs) {
  audio.currentTime = fromMs / 1000;
  const stop = () => {
    if (audio.currentTime >= toMs / 1000) { audio.pause(); audio.removeEventListener("timeupdate", stop); }
  };
  audio.addEventListener("timeupdate", stop);
  audio.play().catch((e) => toast(t("error.play", {error: e.message})));
}

// --- replay ----------------------------------------------------------------------------
function replayPanel(call) {
  const choose = h("select", {id: "replay-model"},
    h("option", {value: ""}, t("replay.latest")));
  const run = h("button", {class: "button primary", id: "replay-run"}, t("replay.run"));
  const out = h("div", {id: "replay-result"});
  const panel = h("section", {class: "panel", id: "replay"},
    h("div", {class: "panel-head"}, h("h2", {}, t("replay.title")),
      h("span", {class: "muted"}, t("replay.intro"))),
    h("div", {class: "replay-controls"}, h("label", {class: "field"},
      h("span", {}, t("field.model")), choose), run),
    out);
  api(`calls/${encodeURIComponent(call.call_id)}/models`).then(({models}) => {
    for (const name of models) {
      const recorded = name === call.model || name === `${call.model}.tar.gz`;
      choose.append(h("option", {value: name}, recorded ? t("replay.this_calls", {model: name}) : name));
    }
  }).catch(() => {});
  run.addEventListener("click", async () => {
    run.disabled = true;
    out.replaceChildren(h("p", {class: "muted", id: "replay-busy"},
      t("replay.busy")));
    try {
      const result = await api(`calls/${encodeURIComponent(call.call_id)}/replay`,
        {method: "POST", body: {model: choose.value || null}});
      out.replaceChildren(replayDiff(result));
    } catch (e) {
      out.replaceChildren(h("p", {class: "form-error"}, t("replay.failed", {error: e.message})));
    } finally {
      run.disabled = false;
    }
  });
  return panel;
}

function replayDiff(result) {
  const keys = ["outcome", "queue", "intent", "reason"];
  const summary = h("table", {class: "grid diff", id: "replay-summary"},
    h("thead", {}, h("tr", {}, h("th", {}, ""), h("th", {}, t("replay.recorded")),
      h("th", {}, t("replay.replayed")))),
    h("tbody", {}, keys.map((k) => {
      const a = (result.recorded || {})[k], b = (result.replayed || {})[k];
      return h("tr", {class: a === b ? "" : "changed"}, h("th", {}, t(`field.${k}`)),
        h("td", {}, a ? named(k, a) : "–"), h("td", {}, b ? named(k, b) : "–"));
    })));
  const side = (x) => x ? [
    h("q", {}, x.heard ?? ""), " ", named("intent", x.intent), " ",
    h("span", {class: "num muted"}, conf(x.confidence)),
    (x.prompt_names || []).length
      ? h("div", {class: "mono muted small"}, x.prompt_names.filter(Boolean).join(", ")) : "",
  ] : "–";
  const turns = h("table", {class: "grid diff", id: "replay-turns"},
    h("thead", {}, h("tr", {}, ["#", t("replay.input"), t("replay.recorded"), t("replay.replayed")]
      .map((c) => h("th", {}, c)))),
    h("tbody", {}, (result.turns || []).map((r) => h("tr", {class: r.differs ? "changed" : ""},
      h("td", {class: "num"}, r.n),
      h("td", {}, inputText(r.input, r.recorded)),
      h("td", {}, side(r.recorded)),
      h("td", {}, side(r.replayed), r.note ? h("div", {class: "muted small"}, r.note) : "")))));
  const changed = (result.turns || []).filter((r) => r.differs).length;
  return h("div", {class: "replay-diff"},
    h("div", {class: "badges"},
      result.route_changed ? badge(t("replay.changed"), "bad") : badge(t("replay.same"), "ok"),
      badge(t("replay.differ", {n: changed}), changed ? "warn" : "muted"),
      badge(t("replay.source", {source: result.source}), "muted"),
      badge(t("replay.model", {model: result.model || ""}), "muted"),
      result.recorded_model ? badge(t("replay.recorded_with", {model: result.recorded_model}), "muted") : "",
      csvButton("replay-summary", summary), csvButton("replay-turns", turns)),
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
  if (input.dtmf !== undefined) return t("input.keys", {keys: input.dtmf});
  if (input.silence) return t("input.silence");
  if (input.hangup) return t("input.hangup");
  return JSON.stringify(input);
}

// --- view: figures ---------------------------------------------------------------------
// The filters the figures take (and keep in the URL); test calls (simulate, chat) are out
// unless the toggle is on.
const FIGURE_FILTERS = ["hours", "locale", "transport", "queue", "test"];

async function figuresView(params) {
  const view = document.getElementById("view");
  const hours = params.get("hours") || "24";
  const query = new URLSearchParams();
  for (const key of FIGURE_FILTERS) if (params.get(key)) query.set(key, params.get(key));
  query.set("hours", hours);
  const form = h("form", {class: "filters", id: "figure-filters"});
  form.addEventListener("change", () => {
    const next = new URLSearchParams();
    for (const [key, value] of new FormData(form)) if (value) next.set(key, value);
    window.location.hash = `#/figures?${next}`;
  });
  const body = h("div", {id: "figures"});
  view.replaceChildren(h("section", {class: "panel"},
    h("div", {class: "panel-head"}, h("h1", {}, t("figures.title")),
      h("span", {class: "muted", id: "figures-updated"})), form), body);

  async function draw() {
    const f = await api(`figures?${query}`);
    // The filters offer what the period's calls have (and keep a choice that has none).
    const offer = (key) => [...new Set([...f.options[key], ...(params.get(key) ? [params.get(key)] : [])])];
    const test = h("input", {type: "checkbox", name: "test", value: "1", id: "figures-test",
      checked: params.get("test") === "1"});
    form.replaceChildren(
      select("hours", t("field.period"), periods(PERIODS.filter(([v]) => v)), hours),
      select("locale", t("field.locale"), [["", t("filter.any")], ...offer("locale").map((l) => [l, l])],
        params.get("locale") || ""),
      select("transport", t("field.transport"), anyOf("transport", offer("transport")),
        params.get("transport") || ""),
      select("queue", t("field.queue"), anyOf("queue", offer("queue")), params.get("queue") || ""),
      h("label", {class: "field check"}, test, h("span", {}, t("figures.test"))));
    const kpi = (id, label, value, note) => h("div", {class: "kpi", id},
      h("div", {class: "kpi-value"}, value), h("div", {class: "kpi-label"}, label),
      note ? h("div", {class: "kpi-note muted"}, note) : "");
    const escalated = (f.outcome || {}).escalated || 0;
    const signals = Object.values(f.misroute_signals || {}).reduce((a, b) => a + b, 0);
    const intents = Object.entries(f.containment_by_intent || {});
    const byIntent = h("table", {class: "grid compact", id: "containment-by-intent"},
      h("thead", {}, h("tr", {}, ["field.intent", "field.calls", "field.self_service",
        "field.escalated", "field.abandoned", "field.containment"].map((k) => h("th", {}, t(k))))),
      h("tbody", {}, intents.map(([name, v]) => h("tr", {"data-intent": name},
        h("td", {}, named("intent", name)), h("td", {class: "num"}, v.calls),
        h("td", {class: "num"}, v.self_service), h("td", {class: "num"}, v.escalated),
        h("td", {class: "num"}, v.abandoned), h("td", {class: "num"}, percent(v.containment))))));
    body.replaceChildren(
      h("section", {class: "kpis"},
        kpi("kpi-live", t("kpi.live"), f.live_calls, t("kpi.live_note")),
        kpi("kpi-calls", t("kpi.calls"), f.calls, t("kpi.calls_note", {n: f.ended})),
        kpi("kpi-containment", t("kpi.containment"), percent(f.containment), t("kpi.containment_note")),
        kpi("kpi-transfer", t("kpi.transfer"), percent(f.transfer_rate), t("kpi.transfer_note", {n: escalated})),
        kpi("kpi-abandonment", t("kpi.abandonment"), percent(f.abandonment),
          t("kpi.abandonment_note", {n: f.abandoned})),
        kpi("kpi-aht", t("kpi.aht"), f.average_handle_s === null ? "–" : clock(f.average_handle_s),
          t("kpi.aht_note")),
        kpi("kpi-repeat", t("kpi.repeat"), f.repeat_callers,
          t("kpi.repeat_note", {n: f.repeat_calls, rate: percent(f.repeat_rate)})),
        kpi("kpi-signals", t("kpi.signals"), signals, t("kpi.signals_note"))),
      h("section", {class: "charts"},
        columnChart(t("chart.hours", {zone: I18N.timezone.name}), f.calls_by_hour,
          {id: "hours", slot: (i) => t("csv.hour", {h: pad(i)})}),
        barChart(t("chart.outcomes"), f.outcome, {id: "outcome", kind: "outcome"}),
        barChart(t("chart.by_queue"), f.escalations_by_queue, {id: "queue", tone: "warn", kind: "queue"}),
        barChart(t("chart.by_reason"), f.escalations_by_reason, {id: "reason", tone: "warn", kind: "reason"}),
        barChart(t("chart.signals"), f.misroute_signals, {id: "signals", tone: "bad", kind: "signal"}),
        h("figure", {class: "chart wide", "data-chart": "by-intent"},
          h("figcaption", {}, t("chart.by_intent"), csvButton("containment-by-intent", byIntent)),
          intents.length ? byIntent : h("p", {class: "muted empty"}, t("chart.empty")))));
    document.getElementById("figures-updated").textContent =
      t("figures.updated", {time: when(Date.now() / 1000).slice(11), s: REFRESH_MS / 1000});
  }
  await draw();
  refreshTimer = setInterval(() => draw().catch((e) => toast(e.message)), REFRESH_MS);
}

// --- view: trends ----------------------------------------------------------------------
const TREND_PERIODS = [["7", "period.week"], ["30", "period.month"], ["90", "period.quarter_weekly"],
  ["365", "period.year_weekly"]];
const LOCALES = [["zh", "locale.zh"], ["ko", "locale.ko"]];

// A line chart of shares (0..1) per period; a period without data is a gap in the line.
function lineChart(title, periods, lines, options = {}) {
  const figure = h("figure", {class: "chart", "data-chart": options.id || ""},
    h("figcaption", {}, title, csvButton(options.id || "chart", () => [
      [t("csv.period"), ...lines.map((l) => l.name)],
      ...periods.map((p, i) => [p, ...lines.map((l) => l.values[i])])])));
  if (!lines.some((l) => l.values.some((v) => v !== null))) {
    figure.append(h("p", {class: "muted empty"}, t("chart.empty")));
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
    const g = s("g", {class: `line tone-${k}`, "data-line": line.key || line.name});
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

function accuracyTable(id, title, rows, kind) {
  const entries = Object.entries(rows).sort((a, b) => b[1].total.judged - a[1].total.judged);
  const table = h("table", {class: "grid compact", id},
    h("thead", {}, h("tr", {}, ["", "trends.accuracy", "trends.judged", "trends.wrong",
      "trends.pending", "trends.over_time"].map((x) => h("th", {}, x && t(x))))),
    h("tbody", {}, entries.map(([name, v]) => h("tr", {"data-name": name},
      h("td", {}, kind ? named(kind, name) : name), h("td", {class: "num"}, percent(v.total.accuracy)),
      h("td", {class: "num"}, v.total.judged), h("td", {class: "num"}, v.total.wrong),
      h("td", {class: "num"}, v.total.pending), h("td", {}, sparkline(v.series))))));
  return h("figure", {class: "chart"}, h("figcaption", {}, title, csvButton(id, table)),
    entries.length ? table : h("p", {class: "muted empty"}, t("chart.empty")));
}

function confusionTable(confusion) {
  const {labels, counts} = confusion;
  const figure = h("figure", {class: "chart wide"});
  if (!labels.length) {
    figure.append(h("figcaption", {}, t("trends.confusion")),
      h("p", {class: "muted empty"}, t("trends.confusion_empty")));
    return figure;
  }
  const max = Math.max(1, ...counts.flat());
  const table = h("table", {class: "confusion", id: "confusion"},
    h("thead", {}, h("tr", {}, h("th", {}, ""), labels.map((l) => h("th", {}, named("intent", l))))),
    h("tbody", {}, labels.map((row, i) => h("tr", {"data-row": row}, h("th", {}, named("intent", row)),
      counts[i].map((n, j) => h("td", {
        class: n ? (i === j ? "hit" : "miss") : "",
        "data-col": labels[j], title: `${row} → ${labels[j]}: ${n}`,
        style: n ? {"--level": (0.15 + 0.85 * n / max).toFixed(2)} : null,
      }, n || ""))))));
  figure.append(h("figcaption", {}, t("trends.confusion"), csvButton("confusion", table)),
    h("div", {class: "scroll"}, table));
  return figure;
}

async function trendsView(params) {
  const view = document.getElementById("view");
  const days = params.get("days") || "30";
  const locale = params.get("locale") || "zh";
  const form = h("form", {class: "filters"}, select("days", t("field.period"), periods(TREND_PERIODS), days),
    select("locale", t("field.locale"), periods(LOCALES), locale));
  form.addEventListener("change", () => {
    const q = new URLSearchParams(new FormData(form));
    window.location.hash = `#/trends?${q}`;
  });
  const tr = await api(`trends?days=${encodeURIComponent(days)}&locale=${encodeURIComponent(locale)}`);
  const total = tr.accuracy.total;
  const dialects = Object.entries(tr.per_dialect).sort((a, b) => b[1].total.judged - a[1].total.judged)
    .slice(0, 5).map(([name, v]) => ({name, values: v.series, counts: v.judged}));
  const promotionTable = tr.promotions.length ? h("table", {class: "grid compact", id: "promotions"},
    h("thead", {}, h("tr", {}, ["trends.when", "trends.model", "trends.by", "trends.heldout"]
      .map((x) => h("th", {}, t(x))))),
    h("tbody", {}, tr.promotions.map((p) => h("tr", {},
      h("td", {}, p.at), h("td", {class: "mono"}, p.model), h("td", {}, p.by),
      h("td", {class: "num"}, p.live === null || p.live === undefined ? percent(p.candidate)
        : `${percent(p.live)} → ${percent(p.candidate)}${p.forced ? t("trends.forced") : ""}`)))))
    : null;
  const promotions = promotionTable || h("p", {class: "muted empty"}, t("trends.no_promotions"));
  view.replaceChildren(h("section", {class: "panel"},
    h("div", {class: "panel-head"}, h("h1", {}, t("trends.title")),
      h("span", {class: "muted"}, t("trends.note", {bucket: t(`trends.per_${tr.bucket}`),
        zone: tr.timezone || I18N.timezone.name}))),
    form),
  h("section", {class: "kpis"},
    h("div", {class: "kpi", id: "kpi-accuracy"}, h("div", {class: "kpi-value"}, percent(total.accuracy)),
      h("div", {class: "kpi-label"}, t("trends.estimated")),
      h("div", {class: "kpi-note muted"}, t("trends.estimated_note", {n: total.judged, wrong: total.wrong}))),
    h("div", {class: "kpi", id: "kpi-pending"}, h("div", {class: "kpi-value"}, total.pending),
      h("div", {class: "kpi-label"}, t("trends.pending_review")),
      h("div", {class: "kpi-note muted"}, t("trends.pending_note")))),
  h("section", {class: "charts", id: "trends"},
    lineChart(t("trends.rates"), tr.periods, [
      {key: "containment", name: t("trends.containment"), values: tr.containment, counts: tr.calls},
      {key: "misroute rate", name: t("trends.misroute"), values: tr.misroute_rate, counts: tr.calls}],
    {id: "rates"}),
    lineChart(t("trends.by_dialect"), tr.periods,
      [{key: "all", name: t("trends.all"), values: tr.accuracy.series, counts: tr.accuracy.judged}, ...dialects],
      {id: "accuracy"}),
    accuracyTable("per-intent", t("trends.per_intent"), tr.per_intent, "intent"),
    accuracyTable("per-dialect", t("trends.per_dialect"), tr.per_dialect),
    confusionTable(tr.confusion),
    h("figure", {class: "chart"}, h("figcaption", {}, t("trends.promotions"),
      promotionTable ? csvButton("promotions", promotionTable) : ""), promotions)));
}

// --- view: review queue (trainers) -------------------------------------------------------
const REVIEW_PERIODS = [["24", "period.day"], ["168", "period.week"], ["720", "period.month"]];
const OUTCOME_TONES = {added: "ok", exists: "muted", masked: "warn", conflict: "bad"};
const PROPOSAL_TONES = {pending: "warn", accepted: "ok", rejected: "muted"};
// What a cluster page did before it went back to the queue (its cluster has left it).
let reviewFlash = null;

// Back to the queue, saying what was done there.
function leaveCluster(at, flash) {
  reviewFlash = flash;
  window.location.hash = `#/review?${reviewQuery(at)}`;
}

function reviewParams(params) {
  return {locale: params.get("locale") || "zh", hours: params.get("hours") || "168"};
}
function reviewQuery({locale, hours}) {
  return new URLSearchParams({locale, hours}).toString();
}

async function reviewView(params) {
  const view = document.getElementById("view");
  const at = reviewParams(params);
  const [data, proposed] = await Promise.all([api(`review?${reviewQuery(at)}`),
    api(`review/proposals?locale=${encodeURIComponent(at.locale)}`)]);
  const flash = reviewFlash;
  reviewFlash = null;
  const form = h("form", {class: "filters", id: "review-filters"},
    select("locale", t("field.locale"), data.locales.map((l) => [l, l]), at.locale),
    select("hours", t("field.period"), periods(REVIEW_PERIODS), at.hours));
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
    h("td", {}, named("intent", c.intent)),
    h("td", {class: "wordings"}, c.texts.map((w) => h("q", {class: "wording"}, w))),
    h("td", {}, h("span", {class: "badges"}, badge(t("review.weight", {w: c.score}), "muted", "score"),
      Object.entries(c.signals).map(([k, n]) => badge(`${labelText("signal", k)} ×${n}`, "bad", k)))));
  });
  const clusters = h("table", {class: "grid", id: "clusters"},
    h("thead", {}, h("tr", {}, ["review.calls", "review.utterances", "review.understood_as",
      "review.wordings", "review.signals"].map((c) => h("th", {}, t(c))))),
    h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", {colspan: 5, class: "empty muted"},
      t("review.none")))));
  view.replaceChildren(
    flash ? h("section", {class: "panel", id: "review-flash"}, flash) : "",
    h("section", {class: "panel"}, h("div", {class: "panel-head"}, h("h1", {}, t("review.title")),
      h("span", {class: "muted", id: "review-count"}, t("review.count", {n: data.clusters.length})),
      csvButton("review", clusters)), form),
    h("section", {class: "panel flush"}, clusters),
    proposalsPanel(proposed.proposals, at));
}

// Proposed intents of the locale: a pending one is accepted or rejected by another trainer
// or an admin (never its author); a developer then adds an accepted one to the domain.
function proposalsPanel(proposals, at) {
  const rows = proposals.map((p) => {
    const out = h("span", {class: "decide-result"});
    const decide = (decision) => async (event) => {
      event.target.disabled = true;
      try {
        const r = await api(`review/proposals/${encodeURIComponent(p.id)}`, {method: "POST",
          body: {locale: at.locale, decision}});
        status.replaceChildren(badge(t(`proposal.${r.proposal.status}`),
          PROPOSAL_TONES[r.proposal.status], r.proposal.status), " ",
        h("span", {class: "muted small"}, t("proposal.reviewed_by", {by: r.proposal.reviewed_by})));
        actions.replaceChildren();
      } catch (e) {
        out.replaceChildren(h("span", {class: "form-error"}, e.message));
        event.target.disabled = false;
      }
    };
    const status = h("td", {class: "status"}, badge(t(`proposal.${p.status}`), PROPOSAL_TONES[p.status],
      p.status), p.reviewed_by ? h("span", {class: "muted small"}, " ",
      t("proposal.reviewed_by", {by: p.reviewed_by})) : "");
    const actions = h("span", {class: "actions"});
    if (p.status === "pending" && p.proposed_by !== me.name) {
      actions.append(
        h("button", {class: "button small primary", "data-action": "accept", onclick: decide("accept")},
          t("proposal.accept")), " ",
        h("button", {class: "button small", "data-action": "reject", onclick: decide("reject")},
          t("proposal.reject")));
    } else if (p.status === "pending") {
      actions.append(h("span", {class: "muted small"}, t("proposal.awaiting")));
    }
    return h("tr", {"data-proposal": p.id, "data-intent": p.intent},
      h("td", {}, h("span", {class: "mono strong"}, p.intent), h("div", {}, p.label)),
      h("td", {}, p.route === "answer" ? t("proposal.answer")
        : t("proposal.to_queue", {queue: labelText("queue", p.route)})),
      h("td", {class: "wordings"}, p.examples.map((x) => h("q", {class: "wording"}, x.text))),
      h("td", {}, p.proposed_by, h("div", {class: "muted small"}, when(Date.parse(p.proposed_at) / 1000))),
      status, h("td", {}, actions, out));
  });
  return h("section", {class: "panel flush", id: "proposals"},
    h("div", {class: "panel-head"}, h("h2", {}, t("proposal.title")),
      h("span", {class: "muted"}, t("proposal.intro"))),
    h("table", {class: "grid"},
      h("thead", {}, h("tr", {}, ["proposal.intent", "proposal.route", "proposal.examples",
        "proposal.by", "proposal.status", ""].map((c) => h("th", {}, c ? t(c) : "")))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", {colspan: 6, class: "empty muted"},
        t("proposal.none"))))));
}

async function clusterView(clusterId, params) {
  const view = document.getElementById("view");
  const at = reviewParams(params);
  view.replaceChildren(h("p", {class: "muted"}, t("cluster.loading")));
  const [cluster, options] = await Promise.all([
    api(`review/clusters/${encodeURIComponent(clusterId)}?${reviewQuery(at)}`),
    api(`review/options?locale=${encodeURIComponent(at.locale)}`)]);
  const post = (path, body) => api(path, {method: "POST",
    body: {locale: at.locale, hours: Number(at.hours), ...body}});

  // Label the whole cluster with an intent. The model's intent is offered only when a
  // label may name it: a cluster it did not understand (nlu_fallback) starts with no
  // choice, so nobody labels it with the first intent of the list by accident.
  const understood = options.intents.includes(cluster.intent);
  const intent = intentSelect("label-intent", options.intents, understood ? cluster.intent : null,
    understood ? null : t("cluster.choose"));
  const labelButton = h("button", {class: "button primary", id: "label-cluster",
    disabled: !understood}, t("cluster.label"));
  intent.addEventListener("change", () => { labelButton.disabled = !intent.value; });
  const labelOut = h("div", {id: "label-result"});
  labelButton.addEventListener("click", async () => {
    if (!intent.value) return;
    labelButton.disabled = true;
    try {
      const result = await post("review/label", {target: cluster.id, intent: intent.value});
      // Labelled utterances leave the queue: back to it, unless none was (all conflicts).
      if (result.outcomes.some((o) => o.status !== "conflict")) {
        leaveCluster(at, h("div", {id: "label-result"}, outcomeList(result)));
        return;
      }
      labelOut.replaceChildren(outcomeList(result));
    } catch (e) {
      labelOut.replaceChildren(h("p", {class: "form-error"}, e.message));
    }
    labelButton.disabled = false;
  });

  const snippet = h("audio", {id: "snippet", preload: "none"});
  const items = h("table", {class: "grid items", id: "items"},
    h("thead", {}, h("tr", {}, ["field.call", "cluster.heard", "cluster.understood", "cluster.then"]
      .map((c) => h("th", {}, t(c))), h("th", {}, ""))),
    h("tbody", {}, cluster.items_detail.map((item) => itemRows(item, snippet, options, post)).flat()));

  view.replaceChildren(
    h("p", {}, h("a", {href: `#/review?${reviewQuery(at)}`, class: "back"}, t("cluster.back"))),
    h("section", {class: "panel", id: "cluster"},
      h("div", {class: "panel-head"},
        h("h1", {}, t("cluster.title"), " ", h("span", {class: "mono"}, cluster.id)),
        h("div", {class: "badges"}, badge(t("cluster.calls", {n: cluster.calls}), "warn"),
          badge(t("cluster.items", {n: cluster.items}), "muted"),
          badge(t("cluster.as", {intent: labelText("intent", cluster.intent)}), "muted", cluster.intent))),
      h("p", {class: "wordings"}, cluster.texts.map((w) => h("q", {class: "wording"}, w))),
      h("div", {class: "filters"},
        h("label", {class: "field"}, h("span", {}, t("cluster.meant")), intent), labelButton),
      labelOut),
    h("section", {class: "panel flush"}, h("div", {class: "table-tools"}, csvButton("cluster", items)),
      items, snippet),
    options.dialects.length ? synonymPanel(cluster, options, post, at) : "",
    proposePanel(cluster, options, post, at));
}

// A new intent for the cluster (name, Chinese label, route): a candidate change that
// another trainer or an admin reviews; the live domain is not touched.
function proposePanel(cluster, options, post, at) {
  const name = h("input", {id: "propose-name", placeholder: "open_account", maxlength: 64,
    pattern: "[a-z][a-z0-9_]*", autocomplete: "off"});
  const label = h("input", {id: "propose-label", placeholder: t("proposal.label_hint"), maxlength: 40});
  const route = h("select", {id: "propose-route"}, options.routes.map((r) =>
    h("option", {value: r, title: r}, r === "answer" ? t("proposal.answer")
      : t("proposal.to_queue", {queue: labelText("queue", r)}))));
  const submit = h("button", {class: "button primary", id: "propose-submit"}, t("proposal.submit"));
  const out = h("div", {id: "propose-result"});
  submit.addEventListener("click", async () => {
    submit.disabled = true;
    try {
      const r = await post("review/proposals", {target: cluster.id, intent: name.value,
        label: label.value, route: route.value});
      leaveCluster(at, h("div", {id: "propose-result"}, h("p", {},
        badge(t("proposal.pending"), "warn"), " ", h("span", {class: "mono strong"}, r.proposal.intent),
        " ", r.proposal.label, h("span", {class: "muted"},
          ` ${t("proposal.proposed", {n: r.proposal.examples.length})}`)),
        outcomeList({outcomes: r.outcomes}, t("proposal.attached"))));
    } catch (e) {
      out.replaceChildren(h("p", {class: "form-error"}, e.message));
      submit.disabled = false;
    }
  });
  return h("section", {class: "panel", id: "propose"},
    h("div", {class: "panel-head"}, h("h2", {}, t("proposal.new_title")),
      h("span", {class: "muted"}, t("proposal.new_intro"))),
    h("div", {class: "filters"},
      h("label", {class: "field"}, h("span", {}, t("proposal.name")), name),
      h("label", {class: "field"}, h("span", {}, t("proposal.label")), label),
      h("label", {class: "field"}, h("span", {}, t("proposal.route")), route),
      submit),
    out);
}

function intentSelect(id, intents, current, blank) {
  return h("select", {id}, blank ? h("option", {value: ""}, blank) : "",
    intents.map((i) => h("option", {value: i, selected: i === current, title: i}, labelText("intent", i))));
}

function outcomeList(result, heading) {
  const counts = {};
  for (const o of result.outcomes) counts[o.status] = (counts[o.status] || 0) + 1;
  return h("div", {class: "outcomes"},
    h("p", {}, heading || [t("cluster.labelled_as"), " ",
      result.intent ? named("intent", result.intent, "strong") : "–"], ": ",
      h("span", {class: "badges"}, Object.entries(counts).map(([k, n]) =>
        badge(`${n} ${t(`label.${k}`)}`, OUTCOME_TONES[k], k))),
      result.file ? h("span", {class: "muted"}, ` → ${result.file}`) : ""),
    h("ul", {class: "plain"}, result.outcomes.map((o) => h("li", {"data-status": o.status},
      badge(t(`label.${o.status}`), OUTCOME_TONES[o.status], o.status), " ", h("q", {}, o.text),
      o.detail ? h("span", {class: "muted"}, ` ${o.detail}`) : ""))));
}

// Why an utterance is queued (ivr/trainer/review_signals.py): each signal with its weight, and the
// words that show it when they are another turn's (the correction, the repeat).
function whyFlags(item) {
  return h("div", {class: "flags why"}, (item.why || []).map((w) => h("div", {"data-signal": w.signal},
    badge(`${labelText("signal", w.signal)} · ${t("review.weight", {w: w.weight})}`, "bad", w.signal),
    w.turn !== item.n ? h("span", {class: "muted small"}, " ", t("turn.n", {n: w.turn}), " ",
      w.text ? h("q", {}, w.text) : "", w.intent ? [" → ", named("intent", w.intent)] : "") : "")),
    item.likely_intent ? h("div", {class: "muted small likely"},
      t("review.probably", {intent: labelText("intent", item.likely_intent)})) : "");
}

function itemRows(item, snippet, options, post) {
  const asr = item.asr || {};
  const span = asr.audio_ms;
  const play = asr.recording && span && span.length === 2
    ? h("button", {class: "button small play", title: t("turn.play"), onclick: () => {
      // The recording route with a media fragment: the player stops at the span's end.
      snippet.src = `/console/api/calls/${encodeURIComponent(item.call_id)}/audio` +
        `#t=${(span[0] / 1000).toFixed(2)},${(span[1] / 1000).toFixed(2)}`;
      snippet.play().catch((e) => toast(t("error.play", {error: e.message})));
    }}, `▶ ${clock(span[0] / 1000)}–${clock(span[1] / 1000)}`)
    : h("span", {class: "muted small"}, t("cluster.no_audio"));
  const next = item.next || {};
  const then = [
    next.turn ? h("div", {}, t("turn.then"), " ", inputText(next.turn.input), " ",
      next.turn.intent ? named("intent", next.turn.intent, "muted") : "") : "",
    next.call ? h("div", {class: "badges"}, outcomeBadge(next.call.outcome),
      next.call.queue ? badge(`→ ${labelText("queue", next.call.queue)}`, "warn", next.call.queue) : "",
      next.call.reason ? badge(labelText("reason", next.call.reason), "muted", next.call.reason) : "") : "",
    ...(next.feedback || []).map((f) => h("div", {class: "muted small"},
      t("cluster.agent_desktop", {kind: f.kind, from: labelText("queue", f.from_queue),
        to: labelText("queue", f.to_queue)}))),
  ];
  const asrButton = h("button", {class: "button small", "data-action": "asr"}, t("cluster.asr_error"));
  const row = h("tr", {"data-item": item.key},
    h("td", {}, h("a", {href: `#/call/${encodeURIComponent(item.call_id)}`, class: "mono"},
      item.call_id.slice(0, 8)), h("div", {class: "muted small"},
      `${t("turn.n", {n: item.n})} · ${when(item.started_at)}`)),
    h("td", {}, h("q", {class: "said"}, item.text), " ", play,
      asr.raw !== undefined ? h("div", {class: "muted small"}, t("turn.asr"), " ", h("q", {}, asr.raw),
        (asr.alternatives || []).length ? h("span", {class: "alts"}, " ", t("turn.nbest"), " ",
          asr.alternatives.map((a) => h("span", {class: "alt"}, a.text || "∅"))) : "") : "",
      item.normalized && item.normalized !== item.text
        ? h("div", {class: "muted small"}, t("turn.normalized"), " ", h("q", {}, item.normalized)) : "",
      item.dialect ? badge(item.dialect, "muted") : ""),
    h("td", {}, h("div", {}, item.intent ? named("intent", item.intent, "strong") : "–", " ",
      h("span", {class: "num"}, conf(item.confidence))),
    h("div", {class: "ranking"}, (item.ranking || []).filter((r) => r.name !== item.intent).map((r) =>
      h("span", {class: "rank", title: `${r.name} ${conf(r.confidence)}`},
        h("span", {class: "rank-bar", style: {"--w": `${Math.round(r.confidence * 100)}%`}}),
        h("span", {}, labelText("intent", r.name)), h("span", {class: "num muted"}, conf(r.confidence))))),
    whyFlags(item)),
    h("td", {}, then),
    h("td", {}, asrButton));
  // The ASR-error form: what the caller really said (and, optionally, what they meant).
  const said = h("input", {class: "said-input", placeholder: t("asr.said"), value: item.text});
  const meant = intentSelect("", options.intents, null, t("asr.no_example"));
  const save = h("button", {class: "button small primary"}, t("asr.save"));
  const out = h("span", {class: "asr-result"});
  const form = h("tr", {class: "asr-form", hidden: true}, h("td", {}), h("td", {colspan: 4},
    h("div", {class: "filters"}, said, meant, save, out)));
  asrButton.addEventListener("click", () => { form.hidden = !form.hidden; });
  save.addEventListener("click", async () => {
    save.disabled = true;
    try {
      const result = await post("review/asr", {item: item.key, said: said.value, intent: meant.value || null});
      out.replaceChildren(badge(t("asr.recorded"), "ok"),
        ...result.outcomes.map((o) => badge(t(`label.${o.status}`), OUTCOME_TONES[o.status], o.status)));
    } catch (e) {
      out.replaceChildren(h("span", {class: "form-error"}, e.message));
    } finally {
      save.disabled = false;
    }
  });
  return [row, form];
}

function synonymPanel(cluster, options, post, at) {
  const key = h("input", {id: "synonym-key", placeholder: t("synonym.key_hint")});
  const mandarin = h("input", {id: "synonym-mandarin", placeholder: t("synonym.mandarin_hint")});
  const dialect = h("select", {id: "synonym-dialect"}, options.dialects.map((d) =>
    h("option", {value: d}, d === "asr" ? t("synonym.asr") : d)));
  const force = h("input", {type: "checkbox", id: "synonym-force"});
  // Labelling the cluster with it takes its utterances out of the queue.
  const label = h("input", {type: "checkbox", id: "synonym-label", checked: true});
  const add = h("button", {class: "button primary", id: "synonym-add"}, t("synonym.add"));
  const out = h("div", {id: "synonym-result"});
  add.addEventListener("click", async () => {
    add.disabled = true;
    try {
      const r = await post("review/synonym", {key: key.value, mandarin: mandarin.value,
        dialect: dialect.value, target: label.checked ? cluster.id : null, force: force.checked});
      const added = h("p", {}, badge(t("label.added"), "ok"), " ", h("q", {}, r.key), " → ",
        h("q", {}, r.mandarin), h("span", {class: "muted"},
          t("synonym.added", {dialect: r.dialect, file: r.file})));
      // Labelled with it, the cluster has left the queue: back to it.
      if (label.checked) leaveCluster(at, h("div", {id: "synonym-result"}, added));
      else out.replaceChildren(added);
    } catch (e) {
      out.replaceChildren(h("p", {class: "form-error"}, e.message));
    } finally {
      add.disabled = false;
    }
  });
  return h("section", {class: "panel", id: "synonym"},
    h("div", {class: "panel-head"}, h("h2", {}, t("synonym.title")),
      h("span", {class: "muted"}, t("synonym.intro"))),
    h("div", {class: "filters"},
      h("label", {class: "field"}, h("span", {}, t("synonym.phrase")), key),
      h("label", {class: "field"}, h("span", {}, t("synonym.mandarin")), mandarin),
      h("label", {class: "field"}, h("span", {}, t("synonym.dialect")), dialect),
      h("label", {class: "field check"}, label, h("span", {}, t("synonym.label"))),
      h("label", {class: "field check"}, force, h("span", {}, t("synonym.force"))),
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
  const pick = select("locale", t("field.locale"), locales.map((l) => [l, l]), locale);
  pick.querySelector("select").addEventListener("change", (e) => {
    window.location.hash = `#/model?locale=${encodeURIComponent(e.target.value)}`;
  });

  const live = h("table", {class: "grid", id: "live-models"},
    h("thead", {}, h("tr", {}, ["field.locale", "model.live", "model.serving", "model.newest"]
      .map((c) => h("th", {}, t(c))))),
    h("tbody", {}, locales.map((l) => {
      const m = state.locales[l];
      return h("tr", {"data-locale": l}, h("td", {}, l), h("td", {class: "mono live"}, m.live || "–"),
        h("td", {class: "mono serving"}, m.serving || "–"),
        h("td", {class: "mono candidate"}, m.candidate || "–"));
    })));

  // Training, with progress polled while it runs.
  const finetune = h("input", {type: "checkbox", id: "train-finetune"});
  const train = h("button", {class: "button primary", id: "train", disabled: !state.can_train}, t("model.train"));
  const bar = h("progress", {id: "train-progress", max: 1, value: 0});
  const status = h("span", {id: "train-status", class: "muted"});
  const showTraining = (run) => {
    if (!run) { status.textContent = t("model.no_run"); return; }
    const epochs = run.epochs ? t("model.epoch", {epoch: run.epoch, epochs: run.epochs}) : "";
    // Done: the model's file name (the phase line names the server's own path).
    const phase = run.state === "done" && run.model
      ? t(run.trained ? "model.trained" : "model.up_to_date", {model: run.model.split("/").pop()})
      : run.phase;
    bar.max = run.epochs || 1;
    bar.value = run.state === "done" ? bar.max : run.epoch;
    status.textContent = `${run.locale}: ${t(`train.${run.state}`)} · ${phase}${epochs}` +
      (run.duration_s ? ` · ${run.duration_s} s` : "") + (run.error ? ` · ${run.error}` : "");
    status.dataset.state = run.state;
    train.disabled = run.state === "running" || run.state === "queued";
  };
  const poll = () => {
    clearInterval(refreshTimer);
    refreshTimer = setInterval(async () => {
      try {
        const run = await api("train");
        showTraining(run);
        if (run && (run.state === "done" || run.state === "failed")) {
          clearInterval(refreshTimer);
          if (run.state === "done") window.dispatchEvent(new HashChangeEvent("hashchange"));
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
      m === state.locales[locale].live ? t("model.is_live", {model: m}) : m)));
  const compareButton = h("button", {class: "button", id: "compare"}, t("model.compare"));
  const force = h("input", {type: "checkbox", id: "promote-force"});
  const promoteButton = h("button", {class: "button primary", id: "promote"}, t("model.promote"));
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
    t("model.comparing"), async () => {
      compared.replaceChildren(comparisonTables(await api("compare", {method: "POST",
        body: {locale, model: candidate.value}})));
    }));
  promoteButton.addEventListener("click", () => busy(promoteButton, promoted,
    t("model.promoting"), async () => {
      const r = await api("promote", {method: "POST",
        body: {locale, model: candidate.value, force: force.checked}});
      const p = r.promotion;
      promoted.replaceChildren(h("div", {id: "promotion"},
        h("p", {}, badge(t("model.promoted"), "ok"), " ", h("span", {class: "mono"}, p.model),
          h("span", {class: "muted"}, t(p.forced ? "model.promoted_by_forced" : "model.promoted_by",
            {previous: p.previous || "–", by: p.by}))),
        p.heldout ? h("p", {class: "muted"}, t("model.heldout", {live: p.heldout.live.toFixed(3),
          candidate: p.heldout.candidate.toFixed(3), delta: signed(p.heldout.delta)})) : "",
        r.swap ? h("p", {id: "swap"}, r.swap.error
          ? h("span", {class: "form-error"}, t("model.not_swapped", {error: r.swap.error}))
          : t(r.swap.swapped ? "model.swapped" : "model.already", {model: r.swap.model,
            previous: r.swap.previous})) : ""));
      const row = document.querySelector(`#live-models tr[data-locale="${locale}"]`);
      row.querySelector(".live").textContent = p.model;
      row.querySelector(".candidate").textContent = "–";
      if (r.swap && r.swap.model) row.querySelector(".serving").textContent = r.swap.model;
    }));

  view.replaceChildren(
    h("section", {class: "panel"}, h("div", {class: "panel-head"}, h("h1", {}, t("model.title")),
      csvButton("models", live)), live),
    h("section", {class: "panel", id: "training"},
      h("div", {class: "panel-head"}, h("h2", {}, t("model.train")),
        h("span", {class: "muted"}, t("model.train_intro"))),
      h("div", {class: "filters"}, pick,
        h("label", {class: "field check"}, finetune, h("span", {}, t("model.finetune"))),
        train),
      h("div", {class: "progress"}, bar, status)),
    h("section", {class: "panel", id: "compare-promote"},
      h("div", {class: "panel-head"}, h("h2", {}, t("model.compare_title")),
        h("span", {class: "muted"}, t("model.compare_intro"))),
      h("div", {class: "filters"},
        h("label", {class: "field"}, h("span", {}, t("model.candidate")), candidate), compareButton,
        h("label", {class: "field check"}, force, h("span", {}, t("model.force"))),
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
    h("caption", {}, `${t(name === "heldout" ? "compare.heldout" : "compare.labelled")} (${c.examples})`),
    h("thead", {}, h("tr", {}, ["", t("compare.live"), t("compare.candidate"), t("compare.delta"), "n"]
      .map((x) => h("th", {}, x)))),
    h("tbody", {}, row(t("compare.accuracy"), c.accuracy), row(t("compare.dialect"), c.dialect_and_asr_accuracy),
      Object.entries(c.per_form).map(([k, v]) => row(t("compare.form", {form: k}), v, v.n)),
      Object.entries(c.per_intent).filter(([, v]) => v.delta !== 0).map(([k, v]) =>
        row(named("intent", k), v, v.n)))));
  return h("div", {id: "comparison"},
    h("p", {class: "muted"}, t("compare.live"), " ", h("span", {class: "mono"}, result.live), " · ",
      t("compare.candidate"), " ", h("span", {class: "mono"}, result.candidate), " · ", t("compare.unchanged"),
      " ", sets.map((table) => csvButton(`compare-${table.dataset.set}`, table))),
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
  const role = document.getElementById("user-role");
  role.textContent = labelText("role", me.role);
  role.title = me.role;
  // The one zone every time on the page is in.
  document.getElementById("timezone").textContent =
    t("app.timezone", {zone: I18N.timezone.name, offset: I18N.timezone.offset});
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
