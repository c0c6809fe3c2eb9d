// webhook-dev inspector: the list of webhook calls (admission and conversion), live, and one call in detail.
// Plain DOM, no framework, no build step. Everything from the cluster is untrusted text:
// it only ever goes into textContent, never into HTML.
"use strict";

const state = {
  total: 0,             // rows matching the filters (on the server)
  count: 0,             // rows in all
  rows: new Map(),      // position (0 = newest matching) -> list row, the pages fetched so far
  loading: new Set(),   // pages being fetched
  generation: 0,        // bumps when the filters change: late answers are dropped
  selected: null,       // id of the call shown in the detail pane
  selectedAt: -1,       // its position in the filtered list
  follow: true,         // select each new call as it arrives
  replayable: false,
};
// The list is virtualized: only the rows in view (and a few around) exist in the page,
// fetched from the server a page at a time, so a million-call recording costs the same
// as a hundred. Rows have one fixed height, which is what makes positions computable.
const ROW_HEIGHT = 26;
const PAGE = 200;
const OVERSCAN = 10;

const $ = (selector) => document.querySelector(selector);
const filters = () => document.getElementById("filters").elements;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

const pretty = (value) => JSON.stringify(value, null, 2);
// One line when it reads well on one line, indented otherwise.
const compact = (value) => { const line = JSON.stringify(value); return line.length <= 72 ? line : pretty(value); };
const clock = (iso) => {
  const t = new Date(iso);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())}.${pad(t.getMilliseconds(), 3)}`;
};
// Durations are measured to the microsecond: show sub-millisecond ones with two decimals.
const ms = (value) =>
  value === null || value === undefined ? "–" : `${value.toFixed(value < 1 ? 2 : value < 100 ? 1 : 0)} ms`;
const objectName = (row) => (row.kind ? `${row.kind} ${row.name}` : row.path);

// --- the list --------------------------------------------------------------------------

// The filters as one query in the server's syntax (webhook_dev/recording/query.py); the
// search box takes that syntax too (kind:Pod latency>100 -user:system:*).
const quote = (value) => (/[\s"]/.test(value) ? `"${value.replaceAll('"', "")}"` : value);
function queryText() {
  const f = filters();
  const terms = [];
  if (f.kind.value) terms.push(`kind:${quote(f.kind.value)}`);
  if (f.namespace.value) terms.push(`ns:${quote(f.namespace.value)}`);
  if (f.operation.value) terms.push(`op:${quote(f.operation.value)}`);
  if (f.result.value === "flagged") terms.push("is:flagged");
  else if (f.result.value) terms.push(`result:${quote(f.result.value)}`);
  const text = f.text.value.trim();
  if (text) terms.push(text);
  return terms.join(" ");
}

async function fetchPage(page, generation) {
  if (state.loading.has(page)) return;
  state.loading.add(page);
  try {
    const params = new URLSearchParams({ q: queryText(), offset: page * PAGE, limit: PAGE, order: "newest" });
    const response = await fetch(`/api/exchanges?${params}`);
    const answer = await response.json();
    if (generation !== state.generation) return;
    if (!response.ok) { showQueryError(answer.error); return; }
    showQueryError(null);
    $("#source").textContent = answer.source;
    state.replayable = answer.replay;
    showStatus(answer.status);
    state.total = answer.total;
    state.count = answer.count;
    answer.exchanges.forEach((row, i) => state.rows.set(page * PAGE + i, row));
  } finally {
    state.loading.delete(page);
  }
  renderList();
}

function showQueryError(message) {
  const box = filters().text;
  box.setCustomValidity(message || "");
  box.title = message || "";
}

async function loadFacets() {
  const facets = await fetch("/api/facets").then((r) => r.json());
  for (const name of ["kind", "namespace", "operation"]) for (const value of facets[name] || []) addOption(name, value);
}

// Start over from the newest row: on load, a filter change, a reconnect or new calls.
async function reload(selectNewestAfter) {
  state.generation += 1;
  state.rows = new Map();
  state.loading = new Set();
  await fetchPage(0, state.generation);
  if (selectNewestAfter || state.selected === null) selectNewest();
  else relocateSelection();
}

function relocateSelection() {
  state.selectedAt = -1;
  for (const [at, row] of state.rows) if (row.id === state.selected) state.selectedAt = at;
}

function addOption(name, value) {
  if (!value) return;
  const select = filters()[name];
  if ([...select.options].some((option) => option.value === value)) return;
  select.append(el("option", { value }, value));
}

// New calls (live): fetch the top again once a frame at most, not once a call.
let refreshPending = false;
function liveRow(row) {
  for (const name of ["kind", "namespace", "operation"]) addOption(name, row[name]);
  if (refreshPending) return;
  refreshPending = true;
  requestAnimationFrame(async () => {
    refreshPending = false;
    const atTop = $(".list").scrollTop < ROW_HEIGHT;
    await reload(state.follow || state.selected === null);
    if (!atTop) $(".list").scrollTop += 0; // keep the reader's place
  });
}

function visibleRange() {
  const list = $(".list");
  const first = Math.max(0, Math.floor(list.scrollTop / ROW_HEIGHT) - OVERSCAN);
  const last = Math.min(state.total, Math.ceil((list.scrollTop + list.clientHeight) / ROW_HEIGHT) + OVERSCAN);
  return [first, last];
}

function renderList() {
  const [first, last] = visibleRange();
  for (let page = Math.floor(first / PAGE); page * PAGE < last; page += 1) {
    if (!state.rows.has(page * PAGE) && !state.loading.has(page)) fetchPage(page, state.generation);
  }
  const shown = [];
  for (let at = first; at < last; at += 1) if (state.rows.has(at)) shown.push(listRow(state.rows.get(at), at));
  $("#spacer").style.height = `${state.total * ROW_HEIGHT + ROW_HEIGHT}px`;
  $("#exchanges").style.top = `${first * ROW_HEIGHT}px`;
  $("#exchanges tbody").replaceChildren(...shown);
  $("#empty").hidden = state.total > 0;
  $("#empty").textContent = state.count ? "No call matches the filters." : "Waiting for webhook calls…";
  $("#count").textContent = `${state.total} of ${state.count} calls`;
}

function listRow(row, at) {
  const patch = row.patch_ops === null ? "" : `${row.patch_ops} op${row.patch_ops === 1 ? "" : "s"}`;
  return el("tr", {
    "data-id": row.id,
    class: row.id === state.selected ? "selected" : "",
    onclick: () => { state.follow = at === 0; filters().follow.checked = state.follow; select(row.id, at); },
  },
  el("td", { class: "mono muted" }, clock(row.time)),
  el("td", {}, row.operation || "–"),
  el("td", { class: "object", title: row.uid }, objectName(row)),
  el("td", { class: "muted user" }, row.user),
  el("td", {}, el("span", { class: `result ${row.result.replace(" ", "-")}`, title: row.message }, row.result),
    row.flags.map((flag) => el("span", { class: `flag ${flag.code}`, title: flag.message }, flag.label)),
    row.shadow === "differed" ? el("span", { class: "flag shadow-differed", title: "up --shadow: differs from production (is:differed)" }, "≠ production") : null),
  el("td", { class: "num" }, patch),
  el("td", { class: "num mono" }, ms(row.duration_ms)));
}

function selectNewest() {
  const row = state.rows.get(0);
  if (row !== undefined) select(row.id, 0);
}

async function move(step) {
  const at = Math.min(Math.max(state.selectedAt + step, 0), state.total - 1);
  if (at < 0) return;
  const list = $(".list");
  if (at * ROW_HEIGHT < list.scrollTop) list.scrollTop = at * ROW_HEIGHT;
  if ((at + 2) * ROW_HEIGHT > list.scrollTop + list.clientHeight) list.scrollTop = (at + 2) * ROW_HEIGHT - list.clientHeight;
  if (!state.rows.has(at)) await fetchPage(Math.floor(at / PAGE), state.generation);
  const row = state.rows.get(at);
  if (row !== undefined) { state.follow = false; filters().follow.checked = false; select(row.id, at); }
}

// --- the detail pane -------------------------------------------------------------------

async function select(id, at) {
  state.selected = id;
  state.selectedAt = at;
  for (const tr of document.querySelectorAll("#exchanges tbody tr")) {
    tr.classList.toggle("selected", tr.dataset.id === id);
  }
  const response = await fetch(`/api/exchanges/${encodeURIComponent(id)}`);
  if (state.selected !== id) return; // another click won the race
  if (!response.ok) {
    $("#detail").replaceChildren(el("p", { class: "empty" }, await response.text()));
    return;
  }
  renderDetail(await response.json());
}

function section(title, ...content) {
  return el("section", { class: "part" }, el("h3", {}, title), ...content);
}

function collapsible(title, open, ...content) {
  return el("details", { class: "part", open }, el("summary", {}, title), ...content);
}

function jsonBlock(value, label) {
  const text = pretty(value);
  return el("div", { class: "json" },
    el("button", { type: "button", class: "copy", onclick: (event) => copy(text, event.target) }, `Copy ${label}`),
    el("pre", {}, text));
}

function renderDetail(d) {
  const s = d.summary;
  const replayOut = el("div", { id: "replay-result" });
  const head = el("div", { class: "head" },
    el("h2", {}, `${objectName(s)} `, el("span", { class: "op" }, s.operation)),
    el("span", { class: `result big ${s.result.replace(" ", "-")}` }, s.result),
    s.flags.map((flag) => el("span", { class: `flag ${flag.code}`, title: flag.message }, flag.label)),
    el("button", {
      type: "button", id: "replay", class: "replay", disabled: !state.replayable || !s.kind,
      title: state.replayable ? "Send this request to the current code and compare the answers"
        : "Start webhook-dev inspect with --app APP to replay",
      onclick: () => replay(s.id, replayOut),
    }, "Replay"));
  const parts = [head, replayOut];
  if (d.shadow) parts.push(shadowPart(d.shadow));
  if (d.conversion) {
    parts.push(...conversionParts(d));
  } else {
    parts.push(...admissionParts(d));
  }
  parts.push(section("Timing", timingView(d.timing)));
  parts.push(collapsible(`Raw ${s.review === "conversion" ? "ConversionReviews" : "AdmissionReviews"}`, false,
    el("h4", {}, "Request"), d.request_review === null ? el("p", { class: "muted" }, "not a review webhook-dev knows") : jsonBlock(d.request_review, "request"),
    el("h4", {}, "Response"), d.response_review === null ? el("p", { class: "muted" }, "no review came back") : jsonBlock(d.response_review, "response")));
  $("#detail").replaceChildren(...parts);
}

// up --shadow: production decided; the local code answered the same request. Side by side.
function shadowPart(sh) {
  let verdict;
  if (sh.not_compared.length) verdict = `not compared: ${sh.not_compared.join("; ")}`;
  else if (sh.differed.length) verdict = `differs from production in ${sh.differed.join(", ")}`;
  else verdict = "agrees with production";
  const rows = [["production entry", sh.entry], ["local code", verdict]];
  if (sh.noise.length) rows.push(["noise (production disagreed with itself)", sh.noise.join(", ")]);
  if (sh.production && sh.production.error) rows.push(["production error", sh.production.error]);
  if (sh.production && sh.production.duration_ms !== null) rows.push(["production answered in", `${sh.production.duration_ms} ms`]);
  return section(sh.differed.length ? "Shadow: differs from production" : "Shadow",
    el("table", { class: "facts" }, rows.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, v)))),
    sh.diff !== null ? diffView(sh.diff, "production (decided)", "local code") : null);
}

// A ConversionReview: the version wanted, the result, and each object before and after.
function conversionParts(d) {
  const c = d.conversion;
  const rows = [
    ["desiredAPIVersion", c.desired_api_version],
    ["result.status", c.succeeded === null ? "missing" : (c.succeeded ? "Success" : "Failure")],
    ["HTTP", String(d.summary.http_status)],
  ];
  if (c.message) rows.push(["result.message", c.message]);
  const flags = d.flags.filter((flag) => flag.code !== "http-status");
  const parts = [section("Conversion",
    el("table", { class: "facts" }, rows.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, v)))),
    flags.length ? el("h4", {}, "The apiserver would reject this answer") : null,
    flags.length ? el("ul", { class: "problems" }, flags.map((f) => el("li", {}, `${f.code}: ${f.message}`))) : null)];
  if (d.error) parts.push(section("Error", el("pre", { class: "error" }, d.error)));
  c.objects.forEach((o, i) => {
    const title = `Object ${i + 1} of ${c.objects.length}: ${o.name} (${o.from} → ${c.desired_api_version})`;
    parts.push(o.diff !== null
      ? section(title, diffView(o.diff, o.from, c.desired_api_version))
      : section(title, el("p", { class: "muted" }, "not converted"), jsonBlock(o.before, "object")));
  });
  return parts;
}

function admissionParts(d) {
  const s = d.summary;
  const parts = [];
  if (s.result === "bad request") {
    parts.push(section("Refused by webhook-dev", el("p", {}, `HTTP ${s.http_status}: the request never reached your code.`)));
  } else {
    parts.push(section("Response", responseView(d)));
  }
  if (d.policy) parts.push(section("Policy beside the webhook", policyView(d.policy)));
  if (d.patch !== null) parts.push(section(`Patch (${d.patch.length} op${d.patch.length === 1 ? "" : "s"})`, patchView(d.patch)));
  if (d.patch_problems.length) parts.push(section("Patch problems", el("ul", { class: "problems" }, d.patch_problems.map((p) => el("li", {}, p)))));
  if (d.diff !== null && d.patch !== null) parts.push(section("Object before → after the patch", diffView(d.diff, "request object", "after the patch")));
  if (d.error) parts.push(section("Error", el("pre", { class: "error" }, d.error)));
  if (d.update_diff !== null) parts.push(section("What this UPDATE changes (oldObject → object)", diffView(d.update_diff, "oldObject", "object")));
  if (d.object !== null) parts.push(collapsible("Request object", d.patch === null, jsonBlock(d.object, "object")));
  if (d.old_object !== null) parts.push(collapsible("oldObject", false, jsonBlock(d.old_object, "oldObject")));
  return parts;
}

function responseView(d) {
  const r = d.response;
  const status = r.status || {};
  const rows = [
    ["allowed", r.allowed === undefined || r.allowed === null ? "missing" : String(r.allowed)],
    ["HTTP", String(d.summary.http_status)],
  ];
  if (status.code !== undefined) rows.push(["status.code", String(status.code)]);
  if (status.reason) rows.push(["status.reason", status.reason]);
  if (status.message) rows.push(["status.message", status.message]);
  if (r.patch_type) rows.push(["patchType", r.patch_type]);
  const table = el("table", { class: "facts" }, rows.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, v))));
  const warnings = r.warnings.length
    ? el("ul", { class: "warnings" }, r.warnings.map((w) => el("li", {}, w))) : null;
  const flags = d.flags.filter((flag) => flag.code !== "http-status");
  const problems = flags.length
    ? el("ul", { class: "problems" }, flags.map((f) => el("li", {}, `${f.code}: ${f.message}`))) : null;
  return [table, warnings ? el("h4", {}, "Warnings") : null, warnings,
    problems ? el("h4", {}, "The apiserver would reject this answer") : null, problems];
}

function policyView(p) {
  const verdict = el("p", { class: `replay-verdict ${p.outcome === "agrees" ? "same" : p.outcome === "differs" ? "changed" : "error"}` }, p.line);
  const shown = (v) => (v === null || v === undefined ? "—" : typeof v === "string" ? v : JSON.stringify(v));
  const table = p.rows.length ? el("table", { class: "facts" },
    el("tr", {}, el("th", {}, ""), el("th", {}, `webhook (${p.side || "?"})`), el("th", {}, "policy")),
    p.rows.map((r) => el("tr", { class: r.differs ? "differs" : "" }, el("th", {}, r.field), el("td", {}, shown(r.webhook)), el("td", {}, shown(r.policy))))) : null;
  const matched = p.matched.length ? el("p", { class: "muted" }, `policies that matched: ${p.matched.join(", ")}`) : null;
  const diff = p.object_diff ? diffView(p.object_diff, "after the webhook's patch", "after the policy's mutations") : null;
  return [verdict, table, matched, diff];
}

function patchView(ops) {
  return el("table", { class: "patch" },
    el("thead", {}, el("tr", {}, el("th", {}, "op"), el("th", {}, "path"), el("th", {}, "value"))),
    el("tbody", {}, ops.map((op) => el("tr", { class: `op-${op.op}` },
      el("td", { class: "mono" }, op.op),
      el("td", { class: "mono" }, op.from ? `${op.from} → ${op.path}` : op.path),
      el("td", {}, "value" in op ? el("pre", {}, compact(op.value)) : "")))));
}

const FOLD_CONTEXT = 3; // unchanged lines kept around each change
const FOLD_MIN = 3;     // fewer unchanged lines than this are shown, not folded

function diffView(rows, leftTitle, rightTitle) {
  const body = el("tbody");
  const changed = rows.map((row) => row.kind !== "same");
  const near = (i) => changed.slice(Math.max(0, i - FOLD_CONTEXT), i + FOLD_CONTEXT + 1).some(Boolean);
  let hidden = [];
  const flush = () => {
    if (hidden.length < FOLD_MIN) { body.append(...hidden.map(diffRow)); hidden = []; return; }
    const rowsToShow = hidden;
    const fold = el("tr", { class: "fold" }, el("td", { colspan: 4, onclick: () => fold.replaceWith(...rowsToShow.map(diffRow)) },
      `⋯ ${rowsToShow.length} unchanged line${rowsToShow.length === 1 ? "" : "s"} (click to show)`));
    body.append(fold);
    hidden = [];
  };
  rows.forEach((row, i) => {
    if (row.kind === "same" && !near(i)) { hidden.push(row); return; }
    flush();
    body.append(diffRow(row));
  });
  flush();
  const columns = el("colgroup", {}, ["no", "code", "no", "code"].map((name) => el("col", { class: name })));
  return el("table", { class: "diff" }, columns,
    el("thead", {}, el("tr", {}, el("th", { colspan: 2 }, leftTitle), el("th", { colspan: 2 }, rightTitle))), body);
}

function diffRow(row) {
  const side = (no, text, kind) => [
    el("td", { class: "no" }, no === null ? "" : String(no)),
    el("td", { class: `code ${text === null ? "blank" : kind}` }, text === null ? "" : text),
  ];
  const leftKind = row.kind === "same" ? "" : "del";
  const rightKind = row.kind === "same" ? "" : "ins";
  return el("tr", { class: row.kind }, side(row.left_no, row.left, leftKind), side(row.right_no, row.right, rightKind));
}

function timingView(t) {
  const rows = [
    ["started", new Date(t.started).toLocaleString()],
    ["latency (proxy)", ms(t.duration_ms)],
    ["waiting for a worker", ms(t.wait_ms)],
    ["reading the request", ms(t.read_ms)],
    ["in your code", ms(t.upstream_ms)],
    ["checking the answer", ms(t.checks_ms)],
    ["apiserver timeout", `${t.timeout_s} s`],
    ["worker", t.generation === null ? "–" : `generation ${t.generation}`],
  ];
  return el("table", { class: "facts" }, rows.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, v))));
}

async function replay(id, out) {
  const button = $("#replay");
  button.disabled = true;
  out.replaceChildren(el("p", { class: "muted" }, "Replaying to the current code…"));
  try {
    const response = await fetch(`/api/exchanges/${encodeURIComponent(id)}/replay`, { method: "POST" });
    const answer = await response.json();
    if (!response.ok) { out.replaceChildren(el("p", { class: "replay-verdict error" }, answer.error)); return; }
    const worker = answer.generation === null ? "" : ` (worker ${answer.generation})`;
    const verdict = answer.verdict === "same"
      ? el("p", { class: "replay-verdict same" }, el("strong", {}, "same"), ` — the current code${worker} gives the recorded answer`)
      : el("p", { class: "replay-verdict changed" }, el("strong", {}, "changed"), ` — the current code${worker} answers differently`);
    const lines = answer.diff ? answer.diff.split("\n") : [];
    const diff = lines.length ? el("pre", { class: "unified" }, lines.map((line) => {
      const t = line.trimStart();
      const kind = t.startsWith("+++") || t.startsWith("---") ? "file" : t.startsWith("+") ? "ins" : t.startsWith("-") ? "del" : t.startsWith("@@") ? "hunk" : "";
      return el("span", { class: kind }, line || " ");
    })) : null;
    out.replaceChildren(...[verdict, diff].filter(Boolean));
  } catch (error) {
    out.replaceChildren(el("p", { class: "replay-verdict error" }, `replay failed: ${error}`));
  } finally {
    button.disabled = false;
  }
}

async function copy(text, button) {
  const label = button.textContent;
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch {
    button.textContent = "Copy failed";
  }
  setTimeout(() => { button.textContent = label; }, 1200);
}

function showStatus(status) {
  const worker = $("#worker");
  const generation = status.generation === null ? "no worker" : `worker ${status.generation}`;
  worker.textContent = status.state === "ready" ? `${generation} ready` : `${generation} · ${status.state}`;
  worker.title = status.message || "the code that answers now";
  worker.className = `pill ${status.state}`;
}

// --- live updates ----------------------------------------------------------------------

function connect() {
  const events = new EventSource("/api/events");
  const connection = $("#connection");
  events.addEventListener("open", () => {
    connection.textContent = "live";
    connection.className = "pill live";
    loadFacets();
    reload(false); // on every (re)connect: catch up on what arrived while disconnected
  });
  events.addEventListener("error", () => {
    connection.textContent = "reconnecting…";
    connection.className = "pill offline";
  });
  events.addEventListener("exchange", (event) => liveRow(JSON.parse(event.data)));
  events.addEventListener("status", (event) => showStatus(JSON.parse(event.data)));
}

function start() {
  const form = document.getElementById("filters");
  let typing = null;
  form.addEventListener("input", (event) => {
    state.follow = filters().follow.checked;
    clearTimeout(typing);
    // Typing in the search box asks the server once the keys pause, not once a key.
    typing = setTimeout(() => { $(".list").scrollTop = 0; reload(state.follow); },
      event.target.name === "text" ? 150 : 0);
  });
  form.addEventListener("submit", (event) => event.preventDefault());
  $(".list").addEventListener("scroll", () => requestAnimationFrame(renderList), { passive: true });
  window.addEventListener("resize", () => renderList());
  document.addEventListener("keydown", (event) => {
    if (event.target.matches("input, select")) return;
    if (event.key === "j" || event.key === "ArrowDown") { move(1); event.preventDefault(); }
    if (event.key === "k" || event.key === "ArrowUp") { move(-1); event.preventDefault(); }
  });
  connect();
}

start();
