// The treasury console: a frontend on tesoro's public API, like any other. Plain ES modules,
// no framework. Figures stay decimal strings from the API to the screen.

import { LOCALES, STRINGS } from "./i18n.js";
import { compareDecimal, formatDecimal, signOf } from "./money.js";

const API = "../"; // the console lives at <tesoro>/console/
const KEY_ITEM = "tesoro.key"; // sessionStorage only: the tab forgets it
const LANG_ITEM = "tesoro.lang";
const PAGE_SIZE = 25;
const ALL_POSITIONS = 10000; // the API's largest page: sorting and paging happen here
const MEANINGS = ["cash", "overdraft", "receivable", "payable"];

const $ = (id) => document.getElementById(id);

const state = {
  lang: "en",
  config: null,
  canWrite: false,
  body: null,
  serverDate: null,
  rows: [],
  page: 1,
  sort: null, // {key, dir}
  loading: null,
  timer: null,
  // What this tesoro serves, read from its OpenAPI document (no probing for 404s).
  features: { consolidated: false, history: false, events: false },
  createKey: null, // {key, fingerprint}: reused only while an attempt's outcome is unknown
  live: false,
  changed: new Map(), // account id -> until when it is marked as just changed (ms)
};
const CHANGED_MARK_MS = 60000;

// ---- words and numbers -------------------------------------------------------------------

function t(key, vars = {}) {
  const text = (STRINGS[state.lang] || STRINGS.en)[key] ?? STRINGS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ""));
}

function locale() {
  return LOCALES[state.lang];
}

function money(value) {
  return formatDecimal(value, locale());
}

function pickLanguage() {
  const kept = sessionStorage.getItem(LANG_ITEM);
  if (kept && STRINGS[kept]) return kept;
  for (const tag of navigator.languages || [navigator.language || "en"]) {
    const base = tag.toLowerCase().split("-")[0];
    if (STRINGS[base]) return base;
  }
  return "en";
}

function applyLanguage() {
  document.documentElement.lang = state.lang;
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll("[data-i18n-label]")) {
    el.setAttribute("aria-label", t(el.dataset.i18nLabel));
  }
  $("lang").value = state.lang;
  render();
}

// ---- the API -----------------------------------------------------------------------------

function key() {
  return sessionStorage.getItem(KEY_ITEM);
}

async function call(path, options = {}) {
  const headers = new Headers(options.headers || {});
  const k = key();
  if (k) headers.set("Authorization", `Bearer ${k}`);
  headers.set("Accept", "application/json, application/problem+json");
  const response = await fetch(API + path, { ...options, headers, referrerPolicy: "no-referrer" });
  if (response.status === 401 && state.config.auth_required) {
    askForKey(t("keyWrong"));
    throw new Error("unauthorized");
  }
  return response;
}

async function problemDetail(response) {
  try {
    const body = await response.json();
    return { body, detail: body.detail || body.title || response.statusText };
  } catch {
    return { body: null, detail: response.statusText };
  }
}

// ---- keys --------------------------------------------------------------------------------

function askForKey(message) {
  sessionStorage.removeItem(KEY_ITEM);
  stopPolling();
  // A forgotten key's event stream is closed too.
  state.stream?.abort();
  state.stream = null;
  $("content").hidden = true;
  $("refresh").hidden = true;
  $("key-section").hidden = false;
  $("forget-key").hidden = true;
  const error = $("key-error");
  error.hidden = !message;
  error.textContent = message || "";
  $("key-input").value = "";
  $("key-input").focus();
}

// The API names no route that tells a key's scopes. A create with an empty body is refused
// before anything is done: 403 when the key may not write, 422 (no name) when it may.
async function probeWrite() {
  if (!state.config.auth_required) return true;
  const response = await call("counterparties", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: "{}",
  });
  return response.status === 422;
}

async function start() {
  $("key-section").hidden = true;
  $("content").hidden = false;
  $("refresh").hidden = false;
  $("forget-key").hidden = !state.config.auth_required;
  const ok = await load({ focus: true });
  if (!ok) return;
  state.canWrite = await probeWrite().catch(() => false);
  $("create-section").hidden = !state.canWrite;
  schedule();
  listen();
  loadHistory();
}

// ---- loading -----------------------------------------------------------------------------

function filters() {
  return {
    q: $("f-q").value.trim(),
    kind: $("f-kind").value,
    source: $("f-source").value,
    meaning: $("f-meaning").value,
    currency: $("f-currency").value.trim(),
  };
}

async function matchingCounterparties(q, f) {
  // Search is the API's (accent- and case-insensitive, on names and descriptions).
  const ids = new Set();
  for (let page = 1; ; page += 1) {
    const params = new URLSearchParams({ q, page: String(page), page_size: "200" });
    if (f.kind) params.set("kind", f.kind);
    if (f.source) params.set("source", f.source);
    const response = await call(`counterparties?${params}`);
    if (!response.ok) return ids;
    const body = await response.json();
    for (const item of body.items) ids.add(item.id);
    if (page * body.page_size >= body.total) return ids;
  }
}

function positionsQuery(f) {
  const params = new URLSearchParams({ page_size: String(ALL_POSITIONS) });
  for (const name of ["kind", "source", "meaning", "currency"]) if (f[name]) params.set(name, f[name]);
  const report = $("report-currency").value;
  if (report && state.features.consolidated) {
    params.set("report_currency", report);
    params.set("rates", $("policy").value);
    if ($("rate-date").value) params.set("rate_date", $("rate-date").value);
  }
  return params;
}

async function load({ focus = false, reload = false } = {}) {
  const f = filters();
  const run = (async () => {
    const response = await call(`positions?${positionsQuery(f)}`, {
      // Revalidate by ETag on every look; "Refresh now" asks tesoro to refetch upstream.
      cache: reload ? "reload" : "no-cache",
    });
    if (response.status === 403) {
      showNotice(t("keyForbidden"));
      return false;
    }
    if (!response.ok) {
      const { detail } = await problemDetail(response);
      if (response.status === 422 && $("report-currency").value) {
        showConsolidatedNote(detail);
        $("report-currency").value = "";
        return load({ focus });
      }
      showNotice(t("loadFailed", { status: response.status, detail }));
      return false;
    }
    const body = await response.json();
    const ids = f.q ? await matchingCounterparties(f.q, f) : null;
    state.body = body;
    state.serverDate = Date.parse(response.headers.get("Date")) || Date.now();
    state.rows = ids ? body.positions.filter((p) => ids.has(p.counterparty_id)) : body.positions;
    showNotice("");
    return true;
  })();
  state.loading = run;
  try {
    const ok = await run;
    if (state.loading !== run) return ok; // a newer question has answered since
    render();
    if (focus) $("main").focus?.();
    return ok;
  } catch (error) {
    if (error.message !== "unauthorized") showNotice(t("networkFailed"));
    return false;
  }
}

function schedule() {
  stopPolling();
  const seconds = state.config.refresh_seconds || 10;
  state.timer = setTimeout(async () => {
    await load();
    if (key() || !state.config.auth_required) schedule();
  }, seconds * 1000);
}

function stopPolling() {
  if (state.timer) clearTimeout(state.timer);
  state.timer = null;
}

// Server-sent events when this tesoro has them: read with fetch (EventSource cannot send a
// bearer header). Absent (404), the page keeps polling.
async function listen() {
  if (!state.features.events || state.stream) return;
  const stream = new AbortController();
  state.stream = stream;
  let response;
  try {
    response = await call("events", { headers: { Accept: "text/event-stream" }, signal: stream.signal });
  } catch {
    if (state.stream === stream) state.stream = null;
    return;
  }
  if (!response.ok || !response.body) {
    state.stream = null;
    return;
  }
  state.live = true;
  render();
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (await onEvent(block)) loadHistory();
      }
    }
  } catch {
    // the stream ended; polling goes on
  }
  state.live = false;
  render();
  if (state.stream !== stream) return; // closed on purpose (the key was forgotten)
  state.stream = null;
  setTimeout(listen, 5000);
}

// One server-sent event (lines of `field: value`); comments keep the stream open and say
// nothing. Every event means "look again"; a `positions` one also names the accounts.
async function onEvent(block) {
  let type = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) type = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
  }
  if (!data.length && type === "message") return false;
  if (type === "positions") {
    try {
      const until = Date.now() + CHANGED_MARK_MS;
      for (const account of JSON.parse(data.join("\n")).changed_accounts || []) {
        state.changed.set(account, until);
      }
    } catch {
      // an unreadable event still means "look again"
    }
  }
  await load();
  return true;
}

// ---- rendering ---------------------------------------------------------------------------

function showNotice(text) {
  const notice = $("notice");
  notice.hidden = !text;
  notice.textContent = text;
}

function showConsolidatedNote(text, kind = "") {
  const note = $("consolidated-note");
  note.hidden = !text;
  note.textContent = text || "";
  // The invitation to pick a currency is rewritten in the new language; other notes stay.
  note.dataset.kind = kind;
}

function cell(row, text, { header = false, className = "" } = {}) {
  const el = document.createElement(header ? "th" : "td");
  if (header) el.scope = "row";
  if (className) el.className = className;
  el.textContent = text;
  row.append(el);
  // Its column's name: on a phone, rows are drawn as cards with these as labels.
  const table = row.closest("table");
  const head = table && table.tHead && table.tHead.rows[0] && table.tHead.rows[0].cells[el.cellIndex];
  if (head) el.dataset.label = head.textContent.trim();
  return el;
}

function amountCell(row, value, { header = false } = {}) {
  const el = cell(row, money(value), { header, className: "num" });
  el.dataset.amount = value;
  const sign = signOf(value);
  if (sign < 0) {
    el.classList.add("owed");
    const label = document.createElement("span");
    label.className = "tag";
    label.textContent = t("liability");
    el.append(" ", label);
  }
  return el;
}

function render() {
  if (!state.body) return;
  renderMark();
  renderHealth();
  renderTotals();
  renderConsolidated();
  renderPositions();
  const updated = new Intl.DateTimeFormat(locale(), { timeStyle: "medium" }).format(
    new Date(state.serverDate),
  );
  $("updated").textContent = t("updated", { time: updated });
}

function renderMark() {
  const mark = $("state-mark");
  const sources = state.body.sources;
  const stale = sources.some((s) => s.status === "stale");
  const partial = !state.body.complete;
  mark.hidden = false;
  mark.className = "mark " + (partial ? "bad" : stale ? "warn" : "good");
  const words = [];
  if (partial) words.push(t("partialMark"));
  if (stale) words.push(t("staleMark"));
  if (!words.length) words.push("✓ " + t("ok"));
  if (state.live) words.push(t("liveMark"));
  mark.textContent = (partial || stale ? "⚠ " : "") + words.join(" · ");
  mark.dataset.state = partial ? "partial" : stale ? "stale" : "ok";
  mark.dataset.live = String(state.live);
}

function ageText(seconds) {
  const unit = (value, u) =>
    new Intl.NumberFormat(locale(), { style: "unit", unit: u, unitDisplay: "short", maximumFractionDigits: 0 }).format(
      value,
    );
  if (seconds < 90) return unit(Math.max(0, seconds), "second");
  if (seconds < 90 * 60) return unit(seconds / 60, "minute");
  if (seconds < 36 * 3600) return unit(seconds / 3600, "hour");
  return unit(seconds / 86400, "day");
}

function consentNote(source) {
  const warning = state.body.warnings.find((w) => w.code === "consent_expiring" && w.source === source);
  if (!warning) return "";
  const when = /\d{4}-\d\d-\d\dT[0-9:.]+(?:Z|[+-]\d\d:\d\d)/.exec(warning.message);
  if (!when) return warning.message;
  const days = Math.ceil((Date.parse(when[0]) - state.serverDate) / 86400000);
  if (days <= 0) return t("consentGone");
  return days === 1 ? t("consentDay") : t("consentDays", { days });
}

function renderHealth() {
  const tbody = $("health").tBodies[0];
  tbody.replaceChildren();
  for (const source of state.body.sources) {
    const row = tbody.insertRow();
    row.dataset.source = source.source;
    row.dataset.status = source.status;
    cell(row, source.source, { header: true });
    const status = cell(row, "", { className: `status ${source.status}` });
    const symbol = { ok: "✓", stale: "⚠", unavailable: "✕" }[source.status] || "?";
    status.textContent = `${symbol} ${t(source.status)}`;
    const fetched = source.fetched_at ? Date.parse(source.fetched_at) : null;
    cell(row, fetched ? ageText((state.serverDate - fetched) / 1000) : "—");
    const why = [];
    if (source.error) {
      const words = STRINGS[state.lang][`e_${source.error.code}`];
      why.push(words ? `${words} (${source.error.code}: ${source.error.message})` : source.error.message);
    } else if (source.status === "stale") {
      why.push(t("refreshing"));
    }
    const consent = consentNote(source.source);
    if (consent) why.push(consent);
    cell(row, why.join(" · ") || "—");
  }
}

function renderTotals() {
  const tbody = $("totals").tBodies[0];
  tbody.replaceChildren();
  for (const total of state.body.totals) {
    const row = tbody.insertRow();
    row.dataset.currency = total.currency;
    cell(row, total.currency, { header: true });
    for (const meaning of MEANINGS) amountCell(row, total[meaning]);
    amountCell(row, total.net);
  }
  const currencies = $("currencies");
  currencies.replaceChildren(
    ...state.body.totals.map((total) => Object.assign(document.createElement("option"), { value: total.currency })),
  );
}

function renderConsolidated() {
  const box = $("consolidated");
  const c = state.body.consolidated;
  if (!state.features.consolidated) {
    $("consolidated-form").hidden = true;
    showConsolidatedNote(t("consolidatedOff"));
    box.hidden = true;
    return;
  }
  if (!c) {
    const note = $("consolidated-note");
    if (!note.textContent || note.dataset.kind === "pick") {
      showConsolidatedNote(t("consolidatedPick"), "pick");
    }
    box.hidden = true;
    return;
  }
  showConsolidatedNote(c.complete ? "" : t("consolidatedIncomplete", { list: c.missing_currencies.join(", ") }));
  box.hidden = false;
  box.replaceChildren();
  const figure = document.createElement("p");
  figure.className = "figure";
  figure.id = "consolidated-net";
  figure.dataset.amount = c.net;
  figure.textContent = `${money(c.net)} ${c.currency}`;
  if (signOf(c.net) < 0) figure.append(" ", Object.assign(document.createElement("span"), { className: "tag", textContent: t("liability") }));
  box.append(figure);
  const table = document.createElement("table");
  table.id = "rates";
  const policy = { official: t("policyOfficial"), market: t("policyMarket") }[c.policy] || c.policy;
  table.createCaption().textContent = `${t("rateLegs")} (${policy}, ${c.rate_date})`;
  const head = table.createTHead().insertRow();
  for (const name of ["colCurrency", "colConverted", "colRate", "colLegs"]) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = t(name);
    head.append(th);
  }
  const tbody = table.createTBody();
  for (const rate of c.rates || []) {
    const row = tbody.insertRow();
    cell(row, rate.currency, { header: true });
    const total = state.body.totals.find((x) => x.currency === rate.currency);
    if (total && total.converted) amountCell(row, total.converted.net);
    else cell(row, "—");
    cell(row, `1 ${rate.currency} = ${money(rate.rate)} ${c.currency}`, { className: "num" });
    // Each leg as its source published it (quote per base), with the fixing's date.
    const legs = (rate.legs || []).map((leg) => {
      const late = leg.requested_date && leg.rate_date !== leg.requested_date;
      const unit = leg.unit && leg.unit !== 1 ? `${leg.unit} ` : "";
      return `${leg.series || leg.source}: ${unit}${leg.base} = ${money(leg.published)} ${leg.quote} (${leg.rate_date}${late ? ", " + t("asked") + " " + leg.requested_date : ""})`;
    });
    cell(row, legs.join(" · ") || "—");
  }
  const scroll = document.createElement("div");
  scroll.className = "scroll";
  scroll.append(table);
  box.append(scroll);
}

function sortedRows() {
  const rows = [...state.rows];
  if (!state.sort) return rows;
  const { key: by, dir } = state.sort;
  const compare =
    by === "amount"
      ? (a, b) => compareDecimal(a.amount, b.amount)
      : (a, b) => String(a[by] ?? "").localeCompare(String(b[by] ?? ""), locale(), { sensitivity: "base" });
  // Stable: equal keys keep the API's order (counterparty name, then account).
  return rows.sort((a, b) => dir * compare(a, b));
}

function renderPositions() {
  const rows = sortedRows();
  const pages = Math.max(1, Math.ceil(rows.length / PAGE_SIZE));
  state.page = Math.min(state.page, pages);
  const shown = rows.slice((state.page - 1) * PAGE_SIZE, state.page * PAGE_SIZE);
  const tbody = $("positions").tBodies[0];
  tbody.replaceChildren();
  for (const p of shown) {
    const row = tbody.insertRow();
    row.dataset.account = p.account_id;
    cell(row, p.counterparty_name, { header: true });
    cell(row, p.currency);
    const amount = amountCell(row, p.amount);
    if ((state.changed.get(p.account_id) || 0) > Date.now()) {
      row.classList.add("changed");
      row.dataset.changed = "true";
      const tag = document.createElement("span");
      tag.className = "tag new";
      tag.textContent = t("justChanged");
      amount.append(" ", tag);
    }
    cell(row, p.account_name);
    cell(row, t(`m_${p.meaning}`));
    cell(row, p.source);
  }
  if (!shown.length) {
    const row = tbody.insertRow();
    const td = cell(row, t("noPositions"));
    td.colSpan = 6;
  }
  $("positions-caption").textContent = t("positionsCaption", {
    total: new Intl.NumberFormat(locale()).format(rows.length),
  });
  $("page-info").textContent = t("pageInfo", { page: state.page, pages });
  $("prev").disabled = state.page <= 1;
  $("next").disabled = state.page >= pages;
  for (const th of document.querySelectorAll("#positions th[data-sort]")) {
    const active = state.sort && state.sort.key === th.dataset.sort;
    if (active) th.setAttribute("aria-sort", state.sort.dir > 0 ? "ascending" : "descending");
    else th.removeAttribute("aria-sort");
  }
}

// ---- history (when this tesoro keeps it) -------------------------------------------------

async function loadHistory() {
  const note = $("history-note");
  const box = $("history");
  if (!state.features.history) {
    note.hidden = false;
    note.textContent = t("historyOff");
    box.hidden = true;
    return;
  }
  const now = new Date(state.serverDate || Date.now());
  const since = new Date(now.getTime() - 86400000).toISOString();
  const from = new Date(now.getTime() - 30 * 86400000).toISOString();
  let history;
  let changes;
  let changesSince = since;
  try {
    history = await call(`positions/history?${new URLSearchParams({ from, interval: "day" })}`);
    if (history.status === 404) {
      const { body } = await problemDetail(history);
      if (!body || !String(body.type || "").includes("history-not-available")) {
        note.hidden = false;
        note.textContent = t("historyOff");
        box.hidden = true;
        return;
      }
    }
    // Where history begins, to the hour, so "since yesterday" is never asked of a history
    // that began later (the API would answer 404): the last 25 hours, hour by hour.
    const recent = new Date(now.getTime() - 25 * 3600000).toISOString();
    const hourly = await call(`positions/history?${new URLSearchParams({ from: recent, interval: "hour" })}`);
    const first = hourly.ok ? ((await hourly.json()).points || [])[0] : undefined;
    if (first === undefined) changesSince = null;
    else if (Date.parse(first.at) > Date.parse(since)) changesSince = first.at;
    changes = changesSince ? await call(`positions/changes?${new URLSearchParams({ since: changesSince })}`) : null;
    if (changes && changes.status === 404) {
      // History began after yesterday: the changes since it began, said so.
      const { body } = await problemDetail(changes);
      if (body && body.history_starts_at) {
        changesSince = body.history_starts_at;
        changes = await call(`positions/changes?${new URLSearchParams({ since: changesSince })}`);
      }
    }
  } catch {
    return;
  }
  const { renderHistory } = await import("./history.js");
  const sinceYesterday = changesSince === since;
  const names = new Map((state.body?.positions || []).map((p) => [p.account_id, `${p.counterparty_name} · ${p.account_name}`]));
  await renderHistory(box, note, history, changes, {
    t,
    money,
    locale: locale(),
    sinceYesterday,
    changesSince,
    accountName: (id) => names.get(id) || id,
    range: [Date.parse(from) / 1000, now.getTime() / 1000],
    currency: state.historyCurrency,
    onCurrency: (c) => {
      state.historyCurrency = c;
    },
  });
}

// ---- creating ----------------------------------------------------------------------------

async function createCounterparty(event) {
  event.preventDefault();
  const name = $("c-name").value;
  const description = $("c-description").value;
  const body = JSON.stringify(description ? { name, description } : { name });
  // One key per attempt; sending the same form again after an unknown outcome reuses it.
  if (!state.createKey || state.createKey.fingerprint !== body) {
    state.createKey = { key: crypto.randomUUID(), fingerprint: body };
  }
  const result = $("create-result");
  result.className = "";
  let response;
  try {
    response = await call("counterparties", {
      method: "POST",
      headers: { "Content-Type": "application/json", "Idempotency-Key": state.createKey.key },
      body,
    });
  } catch (error) {
    if (error.message !== "unauthorized") result.textContent = t("createUnknown", { status: "—" });
    return;
  }
  if (response.status === 201) {
    const created = await response.json();
    state.createKey = null;
    result.textContent = t("created", { name: created.name, id: created.id });
    result.className = "good";
    $("create-form").reset();
    load();
    return;
  }
  const { body: problem, detail } = await problemDetail(response);
  result.className = "error";
  if (response.status === 409) {
    state.createKey = null;
    const id = problem?.existing_id || "?";
    result.textContent = t("duplicate", { id });
    // Name the one that exists, as the people who see the page know it.
    const existing = id === "?" ? null : await call(`counterparties/${encodeURIComponent(id)}`).catch(() => null);
    if (existing && existing.ok) {
      const found = await existing.json();
      result.textContent = t("duplicate", { id: `${found.name} (${id})` });
    }
  } else if (response.status === 504 || response.status === 502) {
    result.textContent = t("createUnknown", { status: response.status });
  } else if (response.status === 422) {
    state.createKey = null;
    result.textContent = t("createInvalid", { detail });
  } else {
    state.createKey = null;
    result.textContent = t("createFailed", { status: response.status, detail });
  }
}

// ---- wiring ------------------------------------------------------------------------------

function wire() {
  $("lang").addEventListener("change", () => {
    state.lang = $("lang").value;
    sessionStorage.setItem(LANG_ITEM, state.lang);
    applyLanguage();
    loadHistory();
  });
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("key-input").value.trim();
    if (!value) return;
    sessionStorage.setItem(KEY_ITEM, value);
    $("key-input").value = "";
    start();
  });
  $("forget-key").addEventListener("click", () => askForKey(""));
  $("refresh").addEventListener("click", () => load({ reload: true }));
  let typing;
  const refilter = () => {
    state.page = 1;
    clearTimeout(typing);
    typing = setTimeout(() => load(), 250);
  };
  for (const id of ["f-q", "f-currency"]) $(id).addEventListener("input", refilter);
  for (const id of ["f-kind", "f-source", "f-meaning"]) $(id).addEventListener("change", refilter);
  $("filters").addEventListener("submit", (event) => event.preventDefault());
  for (const id of ["report-currency", "policy", "rate-date"]) {
    $(id).addEventListener("change", () => {
      showConsolidatedNote("");
      load();
    });
  }
  $("consolidated-form").addEventListener("submit", (event) => event.preventDefault());
  $("prev").addEventListener("click", () => {
    state.page -= 1;
    renderPositions();
  });
  $("next").addEventListener("click", () => {
    state.page += 1;
    renderPositions();
  });
  for (const th of document.querySelectorAll("#positions th[data-sort]")) {
    th.querySelector("button").addEventListener("click", () => {
      const same = state.sort && state.sort.key === th.dataset.sort;
      state.sort = { key: th.dataset.sort, dir: same ? -state.sort.dir : 1 };
      state.page = 1;
      renderPositions();
    });
  }
  $("create-form").addEventListener("submit", createCounterparty);
}

// The contract says what this tesoro serves: routes and parameters added by later versions
// (a reporting currency, history, events) appear in it, and the page shows them only then.
async function features() {
  try {
    const response = await fetch(API + "openapi.json");
    const spec = await response.json();
    const paths = spec.paths || {};
    const positions = (paths["/positions"] || {}).get || {};
    return {
      consolidated: (positions.parameters || []).some((p) => p.name === "report_currency"),
      history: Boolean(paths["/positions/history"]) && Boolean(paths["/positions/changes"]),
      events: Boolean(paths["/events"]),
    };
  } catch {
    return { consolidated: false, history: false, events: false };
  }
}

async function main() {
  state.lang = pickLanguage();
  wire();
  applyLanguage();
  const response = await fetch("config.json", { cache: "no-cache" });
  state.config = await response.json();
  state.features = await features();
  if (state.config.auth_required && !key()) {
    askForKey("");
    return;
  }
  start();
}

main();
