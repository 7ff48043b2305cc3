// The collector's page: polls the JSON read API every 2 s and re-renders.
// Values from the API are only ever put in the page as text (never as HTML), since
// they are whatever an app chose to send.
"use strict";

const REFRESH_MS = 2000;
const token = new URLSearchParams(location.search).get("token");
let busy = false;
let again = false;

function api(path) {
  const headers = token ? { Authorization: "Bearer " + token } : {};
  return fetch(path, { headers, cache: "no-store" }).then((response) =>
    response.json().then((body) => {
      if (!response.ok) throw new Error(body.error || response.statusText);
      return body;
    })
  );
}

function selection() {
  const params = new URLSearchParams(location.hash.slice(1));
  return { cls: params.get("class"), ctx: params.get("context"), user: params.get("user") };
}

// A loopback collector keeps each user id's contexts apart: the page shows one user id
// at a time (#user=<id>; the collector's own when none).
function forUser(path) {
  const { user } = selection();
  if (!user) return path;
  return path + (path.includes("?") ? "&" : "?") + "user=" + encodeURIComponent(user);
}

function renderUsers(users, current) {
  const picker = document.getElementById("user");
  picker.hidden = !users || users.length < 2;
  if (picker.hidden) return;
  picker.replaceChildren(...users.map((id) => el("option", { value: id, textContent: id })));
  picker.value = current || users[0];
}

function select(cls, ctx, user) {
  const params = new URLSearchParams();
  const chosen = user === undefined ? selection().user : user;
  if (chosen) params.set("user", chosen);
  if (cls) params.set("class", cls);
  if (ctx) params.set("context", ctx);
  location.hash = params.toString();
}

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props || {});
  for (const child of children) {
    node.append(child instanceof Node ? child : String(child ?? ""));
  }
  return node;
}

function num(value) {
  if (value === undefined || value === null) return "";
  return Number.isInteger(value) ? String(value) : String(+value.toFixed(3));
}

function when(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleTimeString() : "";
}

function json(value) {
  return JSON.stringify(value);
}

function fillTable(id, rows) {
  document.querySelector("#" + id + " tbody").replaceChildren(...rows);
}

function clickableRow(selected, onClick, ...cells) {
  const row = el("tr", { className: "clickable" + (selected ? " selected" : "") }, ...cells);
  row.addEventListener("click", onClick);
  return row;
}

function renderClasses(classes, current) {
  const names = Object.keys(classes);
  document.getElementById("no-data").hidden = names.length > 0;
  fillTable("classes-table", names.map((name) => {
    const info = classes[name];
    return clickableRow(name === current, () => select(name, null),
      el("td", { className: "class-name" }, name),
      el("td", { className: "num" }, info.contexts),
      el("td", { className: "num" }, info.messages),
      el("td", {}, when(info.last_seen)));
  }));
}

function renderContexts(cls, contexts, currentId) {
  document.getElementById("selected-class").textContent = cls;
  fillTable("contexts-table", contexts.map((ctx) =>
    clickableRow(ctx.id === currentId, () => select(cls, ctx.id),
      el("td", { className: "context-id" }, ctx.id),
      el("td", { className: "num" }, ctx.messages),
      el("td", {}, when(ctx.last_seen)),
      el("td", { className: "json" }, json(ctx.fields)))));
}

function renderDetail(detail) {
  document.getElementById("selected-context").textContent = detail.class + " / " + detail.id;
  fillTable("detail-fields", Object.entries(detail.fields).map(([name, value]) =>
    el("tr", {}, el("td", {}, name), el("td", { className: "json" }, json(value)))));
  fillTable("detail-history", detail.history.map((msg, index) =>
    el("tr", {},
      el("td", { className: "num" }, index + 1),
      el("td", {}, when(msg.arrived)),
      el("td", {}, msg.action),
      el("td", {}, msg.timestamp === null ? "" : new Date(msg.timestamp * 1000).toISOString()),
      el("td", { className: "json" }, json(msg.fields)))));
}

function renderSummary(summary) {
  document.getElementById("summary-class").textContent = summary.class;
  fillTable("summary-table", Object.entries(summary.fields).map(([name, info]) => {
    const n = info.numbers || {};
    const top = (info.top || []).map((t) => json(t.value) + " (" + t.count + ")").join(", ");
    return el("tr", { className: "summary-row" },
      el("td", {}, name),
      el("td", { className: "num" }, info.count),
      ...["mean", "p50", "p95", "min", "max"].map((key) =>
        el("td", { className: "num stat-" + key }, num(n[key]))),
      el("td", { className: "top" }, top));
  }));
}

function mostRecent(classes) {
  // With nothing selected, show what the app sent last: that is what its developer
  // is looking for.
  let best = null;
  for (const [name, info] of Object.entries(classes)) {
    if (best === null || info.last_seen > classes[best].last_seen) best = name;
  }
  return best;
}

function show(id, visible) {
  document.getElementById(id).hidden = !visible;
}

async function refresh() {
  if (busy) {
    again = true; // e.g. a click while a poll is in flight: render the new selection next
    return;
  }
  busy = true;
  try {
    const [health, { classes }] = await Promise.all(
      [api(forUser("/api/health")), api(forUser("/api/classes"))]);
    let { cls, ctx, user } = selection();
    renderUsers(health.users, user);
    if (!cls || !(cls in classes)) cls = mostRecent(classes);
    renderClasses(classes, cls);
    show("contexts-section", !!cls);
    show("summary-section", !!cls);
    if (cls) {
      const q = encodeURIComponent(cls);
      const [{ contexts }, summary] = await Promise.all([
        api(forUser("/api/contexts?limit=50&class=" + q)),
        api(forUser("/api/summary?class=" + q))]);
      renderContexts(cls, contexts, ctx);
      renderSummary(summary);
    }
    const detail = cls && ctx
      ? await api(forUser("/api/contexts/" + encodeURIComponent(cls) + "/" +
        encodeURIComponent(ctx))).catch(() => null)
      : null;
    if (detail) renderDetail(detail);
    show("detail-section", !!detail);
    const status = document.getElementById("status");
    status.textContent = health.messages + " messages, " +
      health.contexts + " contexts · updated " + new Date().toLocaleTimeString();
    status.dataset.refreshes = String(Number(status.dataset.refreshes || 0) + 1);
    document.getElementById("error").textContent = "";
  } catch (err) {
    document.getElementById("error").textContent = "Cannot read the collector: " + err.message;
  } finally {
    busy = false;
    if (again) {
      again = false;
      refresh();
    }
  }
}

window.addEventListener("hashchange", refresh);
document.getElementById("user").addEventListener("change", (event) =>
  select(null, null, event.target.value));
refresh();
setInterval(refresh, REFRESH_MS);
