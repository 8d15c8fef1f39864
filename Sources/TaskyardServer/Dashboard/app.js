// The Taskyard dashboard: plain JavaScript over the JSON API, no build step. The token lives in this
// tab's sessionStorage only. Pages re-read what they show when the cluster's change stream
// (GET …/changes, server-sent events) says something happened, never by reloading.
"use strict";

const state = { token: sessionStorage.getItem("taskyard-token"), cluster: null, clusters: [], stream: null, refresh: null, lastFinished: null };
window.taskyardLoadedAt = Date.now(); // a test's proof that the page was never reloaded

const $ = (selector) => document.querySelector(selector);
function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  return node;
}
const badge = (text) => el("span", { class: `state ${text}` }, text);
const time = (value) => value ? new Date(value).toISOString().replace("T", " ").slice(0, 19) : "–";
const compact = (value) => value === null || value === undefined ? "" : JSON.stringify(value);

class APIError extends Error {
  constructor(status, body) { super(body?.error?.message || `HTTP ${status}`); this.status = status; this.body = body; }
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { Authorization: `Bearer ${state.token}`, ...(options.body ? { "Content-Type": "application/json" } : {}), ...(options.headers || {}) } });
  const text = await response.text();
  const body = text && (response.headers.get("content-type") || "").includes("json") ? JSON.parse(text) : text;
  if (response.status === 401) { signOut("The server does not accept this token (401)."); throw new APIError(401, body); }
  if (!response.ok) throw new APIError(response.status, body);
  return body;
}

function showError(error) {
  const banner = $("#banner");
  if (!error) { banner.hidden = true; return; }
  banner.textContent = error.status === 403 ? `This token may not do that: ${error.message}` : String(error.message || error);
  banner.hidden = false;
}

function signOut(message) {
  sessionStorage.removeItem("taskyard-token");
  state.token = null;
  state.stream?.abort();
  route();
  if (message) showError(new Error(message));
}

// MARK: - Live updates

/// The cluster's change stream, read with fetch (EventSource cannot send a token); reconnects on its own.
async function watch(cluster) {
  state.stream?.abort();
  const controller = new AbortController();
  state.stream = controller;
  const live = $("#live");
  while (!controller.signal.aborted && state.token) {
    try {
      const response = await fetch(`/api/v1/clusters/${encodeURIComponent(cluster)}/changes`, { headers: { Authorization: `Bearer ${state.token}` }, signal: controller.signal });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      live.textContent = "● live"; live.className = "on";
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const message = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          if (/^event: /m.test(message)) changed();
        }
      }
    } catch (error) {
      if (controller.signal.aborted) return;
    }
    live.textContent = "○ reconnecting"; live.className = "";
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

/// Something changed: re-read the page's data, at most a few times a second.
let pending = null;
function changed() {
  if (pending) return;
  pending = setTimeout(() => { pending = null; state.refresh?.(); }, 250);
}

// MARK: - Routing

function link(path, text) { return el("a", { href: `#/c/${encodeURIComponent(state.cluster)}${path}` }, text); }

async function route() {
  showError(null);
  clearInterval(state.timer);
  state.refresh = null;
  const main = $("#main");
  $("#forget").hidden = !state.token;
  if (!state.token) {
    main.replaceChildren($("#login") || loginForm());
    $("#nav").replaceChildren();
    return;
  }
  try {
    if (!state.clusters.length) state.clusters = (await api("/api/v1/clusters")).clusters;
  } catch (error) { showError(error); return; }
  const parts = location.hash.replace(/^#\/?/, "").split("?")[0].split("/").filter(Boolean).map(decodeURIComponent);
  const query = new URLSearchParams(location.hash.split("?")[1] || "");
  let cluster = parts[0] === "c" ? parts[1] : null;
  if (!cluster || !state.clusters.some((c) => c.id === cluster)) {
    cluster = state.clusters[0]?.id;
    if (!cluster) { main.replaceChildren(el("p", {}, "No cluster yet: create one with taskyard cluster create.")); return; }
    location.hash = `#/c/${encodeURIComponent(cluster)}`;
    return;
  }
  if (cluster !== state.cluster) { state.cluster = cluster; watch(cluster); }
  const select = $("#cluster");
  select.replaceChildren(...state.clusters.map((c) => el("option", { value: c.id, selected: c.id === cluster }, c.name ? `${c.id} — ${c.name}` : c.id)));
  const page = parts[2] || "";
  $("#nav").replaceChildren(
    el("a", { href: `#/c/${encodeURIComponent(cluster)}`, class: page === "" ? "here" : null }, "Overview"),
    el("a", { href: `#/c/${encodeURIComponent(cluster)}/tasks`, class: page === "tasks" ? "here" : null }, "Tasks"),
    el("a", { href: `#/c/${encodeURIComponent(cluster)}/schedules`, class: page === "schedules" ? "here" : null }, "Schedules"));
  let render;
  if (page === "tasks" && parts[3]) render = () => taskPage(Number(parts[3]));
  else if (page === "tasks") render = () => taskList(query);
  else if (page === "nodes" && parts[3]) render = () => nodePage(parts[3]);
  else if (page === "types" && parts[3]) render = () => typePage(parts[3]);
  else if (page === "schedules") render = () => schedulePage();
  else render = () => overview();
  state.refresh = async () => { try { await render(); } catch (error) { showError(error); } };
  await state.refresh();
  // Progress and leases change without a change event: a slow re-read keeps them current.
  state.timer = setInterval(() => state.refresh?.(), 5000);
}

function loginForm() {
  const form = el("form", { id: "login" },
    el("h1", {}, "Sign in"),
    el("p", {}, "Paste a client token with read (and operate to cancel and retry). It is kept in this tab only, until you close it."),
    el("input", { id: "token", type: "password", autocomplete: "off", placeholder: "token", required: true }),
    el("button", { id: "use-token", type: "submit" }, "Use token"));
  form.addEventListener("submit", signIn);
  return form;
}

function signIn(event) {
  event.preventDefault();
  const token = $("#token").value.trim();
  if (!token) return;
  sessionStorage.setItem("taskyard-token", token);
  state.token = token;
  route();
}

// MARK: - Charts

/// The windows a chart offers, and the one chosen (kept for this tab).
const windows = [["1h", "last hour"], ["24h", "24 hours"], ["7d", "7 days"]];
const chosenWindow = () => sessionStorage.getItem("taskyard-window") || "1h";

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) if (value !== undefined && value !== null) node.setAttribute(key, value);
  for (const child of children.flat(Infinity)) if (child) node.append(child);
  return node;
}

/// A number as an axis shows it: 1.2k, 35, 0.8.
function short(value) {
  if (value >= 1e6) return `${+(value / 1e6).toFixed(1)}M`;
  if (value >= 1e3) return `${+(value / 1e3).toFixed(1)}k`;
  return value >= 10 || value === 0 ? String(Math.round(value)) : value.toFixed(1);
}
const niceMax = (value) => { if (value <= 0) return 1; const p = 10 ** Math.floor(Math.log10(value)); return Math.ceil(value / p) * p; };

/// One chart as hand-made SVG: stacked bars (`bars`) or lines (`lines`) of `series` ([key, label, color
/// class]) over the points. The SVG carries each series' total (`data-<key>`) for tests and screen readers.
function chart(id, title, unit, points, series, kind) {
  const width = 560, height = 160, left = 44, bottom = 20, top = 8;
  const plotWidth = width - left - 8, plotHeight = height - top - bottom;
  const value = (point, key) => point[key] ?? 0;
  const highest = niceMax(Math.max(0, ...points.map((p) => kind === "bars" ? series.reduce((sum, [key]) => sum + value(p, key), 0) : Math.max(...series.map(([key]) => value(p, key))))));
  const x = (i) => left + (i + 0.5) * plotWidth / Math.max(points.length, 1);
  const y = (v) => top + plotHeight - v / highest * plotHeight;
  const band = plotWidth / Math.max(points.length, 1);
  const totals = Object.fromEntries(series.map(([key]) => [`data-${key}`, points.reduce((sum, p) => kind === "bars" ? sum + value(p, key) : Math.max(sum, value(p, key)), 0)]));
  const grid = [0, 0.5, 1].map((f) => [svg("line", { x1: left, x2: width - 8, y1: y(highest * f), y2: y(highest * f), class: "grid" }),
    svg("text", { x: left - 6, y: y(highest * f) + 4, class: "axis", "text-anchor": "end" }, short(highest * f))]);
  const label = (i) => { const at = new Date(points[i].at); return at.toISOString().slice(points.length > 200 || chosenWindow() === "7d" ? 5 : 11, 16).replace("T", " "); };
  const ticks = points.length ? [[0, "start"], [Math.floor(points.length / 2), "middle"], [points.length - 1, "end"]]
    .map(([i, anchor]) => svg("text", { x: x(i), y: height - 4, class: "axis", "text-anchor": anchor }, label(i))) : [];
  let marks;
  if (kind === "bars") {
    marks = points.map((point, i) => {
      let base = 0;
      return series.map(([key, , color]) => {
        const v = value(point, key);
        if (!v) return null;
        const rect = svg("rect", { x: x(i) - band * 0.4, width: Math.max(band * 0.8, 1), y: y(base + v), height: y(base) - y(base + v), class: color },
          svg("title", {}, `${time(point.at)} ${key}: ${v}`));
        base += v;
        return rect;
      });
    });
  } else {
    marks = series.map(([key, , color]) => {
      const drawn = points.map((p, i) => p[key] === null || p[key] === undefined ? null : `${x(i).toFixed(1)},${y(p[key]).toFixed(1)}`);
      // A gap where a step has no value: each run of values is its own line.
      const runs = drawn.join(" ").split(/\s*null\s*/).map((r) => r.trim()).filter(Boolean);
      return runs.map((r) => r.includes(" ") ? svg("polyline", { points: r, class: `line ${color}` }) : svg("circle", { cx: r.split(",")[0], cy: r.split(",")[1], r: 2, class: `dot ${color}` }));
    });
  }
  const legend = el("div", { class: "legend" }, series.map(([key, name, color]) => el("span", { class: `key ${color}` }, name)));
  return el("figure", { class: "chart", id },
    el("figcaption", {}, title, unit ? el("span", { class: "muted" }, ` (${unit})`) : null, legend),
    svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title, ...totals }, grid, ticks, marks));
}

/// The four charts of a scope (`query`: "", "type=…" or "node=…") over the chosen window, with the window's
/// choices; re-read whenever the page is.
async function charts(query) {
  const span = chosenWindow();
  const stats = await api(`/api/v1/clusters/${encodeURIComponent(state.cluster)}/stats?window=${span}${query ? `&${query}` : ""}`);
  const points = stats.points;
  const step = stats.step_seconds >= 3600 ? `${stats.step_seconds / 3600} h` : `${stats.step_seconds / 60} min`;
  const choose = (value) => () => { sessionStorage.setItem("taskyard-window", value); state.refresh?.(); };
  return el("section", { class: "charts", dataset: { window: span } },
    el("div", { class: "windows" }, windows.map(([value, name]) => el("button", { type: "button", class: value === span ? "here" : null, onclick: choose(value) }, name))),
    el("div", { class: "chart-grid" },
      chart("chart-finished", "Finished", `tasks per ${step}`, points, [["completed", "completed", "ok"], ["failed", "failed", "bad"], ["cancelled", "cancelled", "other"]], "bars"),
      chart("chart-depth", "Queue depth", `most at once per ${step}`, points, [["queued", "queued", "wait"], ["received", "running", "run"]], "lines"),
      chart("chart-pickup", "Pick-up time", "ms, submit → claimed", points, [["pickup_p50_ms", "p50", "run"], ["pickup_p99_ms", "p99", "bad"]], "lines"),
      chart("chart-run", "Run time", "ms, claimed → finished", points, [["run_p50_ms", "p50", "run"], ["run_p99_ms", "p99", "bad"]], "lines")));
}

// MARK: - Pages

/// Sums of `family{cluster="…",…}` samples by one label, from Prometheus text.
function samples(text, family, cluster) {
  const rows = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith(family + "{")) continue;
    const close = line.lastIndexOf("}");
    const labels = Object.fromEntries([...line.slice(family.length + 1, close).matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]));
    if (labels.cluster !== cluster) continue;
    rows.push({ labels, value: Number(line.slice(close + 1)) });
  }
  return rows;
}

async function overview() {
  const cluster = state.cluster;
  const [metrics, nodes, trend] = await Promise.all([api("/metrics"), api(`/api/v1/clusters/${encodeURIComponent(cluster)}/nodes`), charts("")]);
  const count = (family, stateName) => samples(metrics, family, cluster).filter((s) => !stateName || s.labels.state === stateName).reduce((sum, s) => sum + s.value, 0);
  const finished = count("taskyard_tasks_finished_total");
  const now = Date.now();
  let rate = "–";
  if (state.lastFinished && state.lastFinished.cluster === cluster && now > state.lastFinished.at) {
    rate = ((finished - state.lastFinished.value) / ((now - state.lastFinished.at) / 1000)).toFixed(1);
  }
  state.lastFinished = { cluster, value: finished, at: now };
  const oldest = Math.max(0, ...samples(metrics, "taskyard_oldest_queued_task_age_seconds", cluster).map((s) => s.value));
  const card = (n, label, id) => el("div", { class: "card", id }, el("div", { class: "n" }, n), el("div", { class: "l" }, label));
  $("#main").replaceChildren(
    el("h1", {}, `Cluster ${cluster}`),
    el("div", { class: "cards" },
      card(count("taskyard_tasks", "queued"), "queued now", "count-queued"),
      card(count("taskyard_tasks", "received"), "running now", "count-received"),
      card(count("taskyard_tasks_finished_total", "completed"), "completed*", "count-completed"),
      card(count("taskyard_tasks_finished_total", "failed"), "failed*", "count-failed"),
      card(count("taskyard_tasks_finished_total", "cancelled"), "cancelled*", "count-cancelled"),
      card(rate, "finished per second", "throughput"),
      card(oldest ? `${oldest.toFixed(1)} s` : "–", "oldest queued task", "oldest-queued")),
    el("p", { class: "muted" }, "* since this server started; live counts are read from the database."),
    trend,
    el("h2", {}, "Nodes"),
    el("table", { id: "nodes" },
      el("tr", {}, el("th", {}, "Node"), el("th", {}, "Status"), el("th", {}, "Last seen"), el("th", {}, "Holds"), el("th", {}, "Slots in use"), el("th", {}, "Endpoint")),
      nodes.nodes.map((node) => el("tr", { dataset: { node: node.id } },
        el("td", {}, link(`/nodes/${encodeURIComponent(node.id)}`, node.id)), el("td", {}, badge(node.status)), el("td", {}, time(node.last_seen_at)),
        el("td", {}, node.held_tasks ?? 0), el("td", { class: "slots" }, `${node.in_use ?? 0} of ${node.capacity}`), el("td", { class: "muted" }, node.endpoint)))));
}

async function taskList(query) {
  const cluster = state.cluster;
  const params = new URLSearchParams();
  for (const key of ["state", "type", "node", "after"]) if (query.get(key)) params.set(key, query.get(key));
  params.set("limit", "50");
  const page = await api(`/api/v1/clusters/${encodeURIComponent(cluster)}/tasks?${params}`);
  const filters = el("form", { class: "filters", onsubmit: (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const key of ["state", "type", "node"]) { const value = event.target.elements[key].value.trim(); if (value) next.set(key, value); }
    location.hash = `#/c/${encodeURIComponent(cluster)}/tasks?${next}`;
  } },
    el("select", { name: "state" }, ["", "queued", "received", "completed", "failed", "cancelled"].map((s) => el("option", { value: s, selected: query.get("state") === s }, s || "any state"))),
    el("input", { name: "type", placeholder: "type", value: query.get("type") || "" }),
    el("input", { name: "node", placeholder: "node", value: query.get("node") || "" }),
    el("button", { type: "submit" }, "Filter"));
  const nextQuery = new URLSearchParams(query);
  if (page.next) nextQuery.set("after", page.next);
  $("#main").replaceChildren(
    el("h1", {}, "Tasks"), filters,
    el("table", { id: "tasks" },
      el("tr", {}, ["Task", "Type", "State", "Node", "Attempt", "Progress", "Created"].map((h) => el("th", {}, h))),
      page.tasks.map((task) => el("tr", { dataset: { task: task.id } },
        el("td", {}, link(`/tasks/${task.id}`, task.id)), el("td", {}, link(`/types/${encodeURIComponent(task.type)}`, task.type)), el("td", {}, badge(task.state)),
        el("td", {}, link(`/nodes/${encodeURIComponent(task.assigned_node)}`, task.assigned_node)), el("td", {}, `${task.attempt}/${task.max_attempts}`),
        el("td", {}, progressBar(task)), el("td", {}, time(task.created_at))))),
    el("div", { class: "pager" },
      query.get("after") ? el("a", { href: `#/c/${encodeURIComponent(cluster)}/tasks` }, "first page") : null,
      page.next ? el("a", { href: `#/c/${encodeURIComponent(cluster)}/tasks?${nextQuery}`, id: "next-page" }, "next page") : null));
}

function progressBar(task) {
  const p = task.progress;
  if (!p || !(p.total > 0) || ["completed", "failed", "cancelled"].includes(task.state)) return "";
  const share = Math.min(1, p.completed / p.total);
  const fill = el("i");
  fill.style.width = `${(share * 100).toFixed(0)}%`; // CSSOM, which the page's CSP allows (a style attribute it does not)
  return el("span", {}, el("span", { class: "bar" }, fill), ` ${p.completed}/${p.total}${p.units ? " " + p.units : ""}`);
}

/// One row per participating node, from the task's `participants`: waiting while queued, running while
/// its attempt is out, then its outcome (with its rollback, where one ran). A completed outcome of an earlier
/// attempt is carried forward: a re-driven attempt ran only the others.
function matrixRows(task) {
  const shown = { pending: "waiting", running: task.cancel_requested ? "stopping" : "running" };
  return task.participants.map((p) => {
    let result = p.error ?? compact(p.result);
    if (p.rollback) result += ` (rollback ${p.rollback.state}${p.rollback.error ? ": " + p.rollback.error : ""})`;
    const carried = p.state === "completed" && p.attempt < task.attempt;
    return { node: p.node, state: shown[p.state] ?? p.state, attempt: p.attempt, started: p.started_at, finished: p.finished_at, result,
             decided: p.decided, carried };
  });
}

/// `complete_when` as a person reads it: all, any, quorum, at least 2.
function policyText(policy) {
  return typeof policy === "object" && policy !== null ? `at least ${policy.at_least}` : String(policy ?? "all");
}

async function taskPage(id) {
  const base = `/api/v1/clusters/${encodeURIComponent(state.cluster)}/tasks/${id}`;
  const [detail, events, tree] = await Promise.all([api(base), api(`${base}/events`), api(`${base}/tree?limit=200`)]);
  const task = detail;
  const terminal = ["completed", "failed", "cancelled"].includes(task.state);
  const act = (verb) => async () => {
    try { await api(`${base}/${verb}`, { method: "POST" }); showError(null); await state.refresh(); } catch (error) { showError(error); }
  };
  const children = new Map();
  for (const t of tree.tasks) { if (!children.has(t.parent_id)) children.set(t.parent_id, []); children.get(t.parent_id).push(t); }
  const drawTree = (t) => el("li", {}, t.id === task.id ? el("b", {}, `${t.id} ${t.type}`) : link(`/tasks/${t.id}`, `${t.id} ${t.type}`), " ", badge(t.state), ` on ${t.assigned_node}`,
    children.has(t.id) ? el("ul", {}, children.get(t.id).map(drawTree)) : null);
  $("#main").replaceChildren(
    el("h1", {}, `Task ${task.id} · `, link(`/types/${encodeURIComponent(task.type)}`, task.type), " ", el("span", { id: "task-state", class: `state ${task.state}` }, task.state)),
    el("p", { class: "muted" }, `attempt ${task.attempt} of ${task.max_attempts} · assigned to `, link(`/nodes/${encodeURIComponent(task.assigned_node)}`, task.assigned_node),
      ` · created ${time(task.created_at)}`,
      task.complete_when && task.complete_when !== "all" ? el("span", { id: "policy" }, ` · complete when ${policyText(task.complete_when)}`) : null,
      task.concurrency_key ? el("span", { id: "concurrency" }, ` · concurrency key ${task.concurrency_key}, at most ${task.concurrency_limit} at once`) : null,
      task.waiting_for ? el("span", { id: "waiting-for", class: "state queued" }, ` waiting for ${task.waiting_for.join(", ")} (no free slot, or offline)`) : null,
      task.traceparent ? ` · traceparent ${task.traceparent}` : "", " ", progressBar(task)),
    task.error ? el("p", { id: "task-error", class: "state failed" }, task.error) : null,
    el("div", { class: "actions" },
      !terminal && task.abortable && !task.cancel_requested ? el("button", { id: "cancel", class: "danger", onclick: act("cancel") }, "Cancel") : null,
      ["failed", "cancelled"].includes(task.state) && !task.parent_id ? el("button", { id: "retry", onclick: act("retry") }, "Retry") : null),
    el("h2", {}, "Participants"),
    el("table", { class: "matrix", id: "matrix" },
      el("tr", {}, ["Node", "State", "Attempt", "Started", "Finished", "Result / error"].map((h) => el("th", {}, h))),
      matrixRows(detail).map((row) => el("tr", { dataset: { node: row.node } },
        el("td", {}, link(`/nodes/${encodeURIComponent(row.node)}`, row.node)), el("td", { class: "state-cell" }, badge(row.state)),
        el("td", {}, row.attempt, row.carried ? " · carried forward" : "", row.decided ? " · decided" : ""), el("td", {}, time(row.started)), el("td", {}, time(row.finished)), el("td", { class: "result" }, row.result)))),
    el("h2", {}, "Events"),
    el("ul", { class: "timeline", id: "events" }, events.events.map((e) =>
      el("li", {}, `${time(e.at)}  `, e.from ? badge(e.from) : "∅", " → ", badge(e.to), e.node ? ` on ${e.node}` : "", ` · attempt ${e.attempt}`, e.detail ? el("span", { class: "muted" }, ` ${compact(e.detail)}`) : null))),
    el("h2", {}, "Tree"),
    el("ul", { class: "tree" }, (children.get(task.parent_id ?? null) || tree.tasks.slice(0, 1)).filter((t) => t.id === task.id).map(drawTree)));
}

async function nodePage(node) {
  const base = `/api/v1/clusters/${encodeURIComponent(state.cluster)}/tasks`;
  const since = new Date(Date.now() - 3600 * 1000).toISOString();
  const [trend, held, queued, recent] = await Promise.all([
    charts(`node=${encodeURIComponent(node)}`),
    api(`${base}?node=${encodeURIComponent(node)}&state=received&limit=100`),
    api(`${base}?node=${encodeURIComponent(node)}&state=queued&limit=100`),
    api(`${base}?node=${encodeURIComponent(node)}&state=completed,failed,cancelled&since=${encodeURIComponent(since)}&limit=100&internal=true`)]);
  const rows = (tasks) => el("table", {},
    el("tr", {}, ["Task", "Type", "State", "Attempt", "Created", "Finished"].map((h) => el("th", {}, h))),
    tasks.map((task) => el("tr", {}, el("td", {}, link(`/tasks/${task.id}`, task.id)), el("td", {}, task.type), el("td", {}, badge(task.state)),
      el("td", {}, `${task.attempt}/${task.max_attempts}`), el("td", {}, time(task.created_at)), el("td", {}, time(task.finished_at)))));
  $("#main").replaceChildren(
    el("h1", {}, `Node ${node}`),
    el("p", { class: "muted" }, "Charts: the tasks this node initiates."), trend,
    el("h2", {}, `Holds now (${held.tasks.length})`), rows(held.tasks),
    el("h2", {}, `Queued for it (${queued.tasks.length})`), rows(queued.tasks),
    el("h2", {}, "Finished in the last hour (first 100, its parts in tasks of other nodes included)"), rows(recent.tasks));
}

async function typePage(type) {
  const base = `/api/v1/clusters/${encodeURIComponent(state.cluster)}/tasks`;
  const [trend, failed] = await Promise.all([
    charts(`type=${encodeURIComponent(type)}`),
    api(`${base}?type=${encodeURIComponent(type)}&state=failed&limit=20`)]);
  $("#main").replaceChildren(
    el("h1", {}, `Type ${type}`), trend,
    el("p", {}, link(`/tasks?type=${encodeURIComponent(type)}`, "Every task of this type")),
    el("h2", {}, `Failed lately (${failed.tasks.length}${failed.next ? "+" : ""})`),
    el("table", {},
      el("tr", {}, ["Task", "Node", "Attempt", "Finished", "Error"].map((h) => el("th", {}, h))),
      failed.tasks.map((task) => el("tr", {}, el("td", {}, link(`/tasks/${task.id}`, task.id)), el("td", {}, task.assigned_node),
        el("td", {}, `${task.attempt}/${task.max_attempts}`), el("td", {}, time(task.finished_at)), el("td", { class: "result" }, task.error || "")))));
}

async function schedulePage() {
  const base = `/api/v1/clusters/${encodeURIComponent(state.cluster)}/schedules`;
  const list = await api(base);
  const toggle = (schedule) => el("button", { type: "button", class: "pause", onclick: async () => {
    try { await api(`${base}/${encodeURIComponent(schedule.id)}/${schedule.paused ? "resume" : "pause"}`, { method: "POST" }); await state.refresh?.(); }
    catch (error) { showError(error); }
  } }, schedule.paused ? "Resume" : "Pause");
  $("#main").replaceChildren(
    el("h1", {}, "Schedules"),
    list.schedules.length ? null : el("p", { class: "muted" }, "No schedule yet: make one with taskyard schedule create."),
    el("table", { id: "schedules" },
      el("tr", {}, ["Schedule", "Cron", "Time zone", "Task", "Catch-up", "Next run", "Last run", "Last task", ""].map((h) => el("th", {}, h))),
      list.schedules.map((schedule) => el("tr", { dataset: { schedule: schedule.id } },
        el("td", {}, schedule.id, schedule.paused ? el("span", { class: "muted" }, " (paused)") : null), el("td", {}, el("code", {}, schedule.cron)),
        el("td", {}, schedule.timezone), el("td", {}, `${schedule.task.type} on ${(schedule.task.participating_nodes || []).join(", ")}`),
        el("td", {}, schedule.catch_up), el("td", { class: "next-run" }, schedule.paused ? "—" : time(schedule.next_run_at)), el("td", {}, time(schedule.last_run_at)),
        el("td", { class: "last-task" }, schedule.last_task_id ? link(`/tasks/${schedule.last_task_id}`, schedule.last_task_id) : "—"),
        el("td", {}, toggle(schedule))))));
}

// MARK: - Start

window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", () => {
  $("#login")?.addEventListener("submit", signIn);
  $("#forget").addEventListener("click", () => signOut());
  $("#cluster").addEventListener("change", (event) => { location.hash = `#/c/${encodeURIComponent(event.target.value)}`; });
  route();
});
