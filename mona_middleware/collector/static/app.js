// The collector's page: polls the JSON read API and draws what it answers.
// Values from the API are only ever put in the page as text (textContent, attribute
// values), never as HTML, since they are whatever an app chose to send. Charts are SVG
// drawn here from /api/overview, which aggregates on the server: no answer grows with
// the number of contexts.
"use strict";

const REFRESH_MS = 2000;
const MAX_REFRESH_MS = 30000;
const PAGE = 50;
const HISTORY_PAGE = 100;
const SVG = "http://www.w3.org/2000/svg";
const COLORS = ["#3b6fd8", "#d8633b", "#2e9e6a", "#9b4fd1", "#c9a227", "#d14f8a", "#7a8699"];
const token = new URLSearchParams(location.search).get("token");
let busy = false;
let again = false;
let timer = null;
let interval = REFRESH_MS;
let drawnOverview = null;
let scrollToDetail = false;

// -- the API and the page's state (in the URL's #hash, so a view can be shared) ---------

function api(path, params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== null && value !== undefined && value !== "") query.set(key, value);
  }
  const url = path + (query.toString() ? "?" + query : "");
  const headers = token ? { Authorization: "Bearer " + token } : {};
  return fetch(url, { headers, cache: "no-store" }).then((response) =>
    response.json().catch(() => ({})).then((body) => {
      if (!response.ok) throw new Error(body.error || response.statusText);
      return body;
    }));
}

const KEYS = { user: "user", cls: "class", ctx: "context", split: "split", offset: "offset",
  hoffset: "hoffset" };

function state() {
  const params = new URLSearchParams(location.hash.slice(1));
  const found = {};
  for (const [name, key] of Object.entries(KEYS)) found[name] = params.get(key) || "";
  found.offset = Math.max(0, parseInt(found.offset, 10) || 0);
  found.hoffset = Math.max(0, parseInt(found.hoffset, 10) || 0);
  return found;
}

function hashOf(values) {
  const params = new URLSearchParams();
  for (const [name, key] of Object.entries(KEYS)) {
    if (values[name]) params.set(key, values[name]);
  }
  return params.toString();
}

// A user's choice: a new history entry (the back button undoes it).
function go(changes) {
  location.hash = hashOf({ ...state(), ...changes });
}

// The page's own choice of a default: recorded without a history entry or a refresh.
function settle(changes) {
  history.replaceState(null, "", "#" + hashOf({ ...state(), ...changes }));
}

// -- building elements ------------------------------------------------------------------

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props || {});
  for (const child of children) {
    if (child !== null && child !== undefined) {
      node.append(child instanceof Node ? child : String(child));
    }
  }
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  for (const child of children) {
    if (child !== null && child !== undefined) {
      node.append(child instanceof Node ? child : String(child));
    }
  }
  return node;
}

function title(text) {
  return svg("title", {}, text);
}

function num(value) {
  if (value === undefined || value === null) return "";
  if (typeof value === "string") return value; // "inf": a non-finite value, named
  if (Number.isInteger(value) && Math.abs(value) < 1e15) return String(value);
  const size = Math.abs(value);
  if (size !== 0 && (size >= 1e9 || size < 1e-4)) {
    return value.toExponential(3).replace(/\.?0+e/, "e");
  }
  return String(+value.toPrecision(4));
}

function count(value) {
  return Number(value || 0).toLocaleString("en-US");
}

function stamp(seconds, step) {
  const date = new Date(seconds * 1000);
  if (!Number.isFinite(date.getTime())) return num(seconds);
  if (step >= 86400) return date.toLocaleDateString();
  const time = date.toLocaleTimeString();
  if (step >= 1) return time;
  return time + " ." + String(date.getMilliseconds()).padStart(3, "0");
}

function when(seconds) {
  if (!seconds) return "";
  const date = new Date(seconds * 1000);
  if (!Number.isFinite(date.getTime())) return num(seconds);
  const today = new Date().toDateString() === date.toDateString();
  return today ? date.toLocaleTimeString() : date.toLocaleString();
}

// A field value as a person reads it: text without quotes, lists as items.
function readable(value) {
  if (value === null) return "null";
  if (typeof value === "string") return value;
  if (typeof value === "number") return num(value);
  if (Array.isArray(value) && value.every((item) => item === null || typeof item !== "object")) {
    return value.map(readable).join(", ");
  }
  return JSON.stringify(value, null, 2);
}

function short(value) {
  const text = Array.isArray(value) ? "[" + value.map(readable).join(", ") + "]" : readable(value);
  return text.length > 80 ? text.slice(0, 79) + "…" : text;
}

function labelOf(value) {
  if (value === null || value === undefined) return "(no value)";
  return typeof value === "string" ? value : JSON.stringify(value);
}

function show(id, visible) {
  document.getElementById(id).hidden = !visible;
}

function text(id, value) {
  document.getElementById(id).textContent = value;
}

function fillTable(id, rows) {
  document.querySelector("#" + id + " tbody").replaceChildren(...rows);
}

function clickableRow(selected, onClick, ...cells) {
  const row = el("tr", { className: "clickable" + (selected ? " selected" : "") }, ...cells);
  row.addEventListener("click", onClick);
  return row;
}

// -- charts -----------------------------------------------------------------------------

// Charts are drawn in viewBox units close to their size on screen, so 11px text stays
// about 11px: cards are ~460 wide, the timeline ~1000.
const CARD = { w: 460, h: 150 };
const WIDE = { w: 1000, h: 170 };
const LEFT = 46;
const BOTTOM = 22;
const TOP = 10;

function frame(node, size, height) {
  node.setAttribute("viewBox", `0 0 ${size.w} ${height || size.h}`);
  node.replaceChildren();
  return node;
}

function axes(node, size, top, bottom) {
  const { w, h } = size;
  node.append(
    svg("line", { class: "axis", x1: LEFT, y1: TOP, x2: LEFT, y2: h - BOTTOM }),
    svg("line", { class: "axis", x1: LEFT, y1: h - BOTTOM, x2: w, y2: h - BOTTOM }),
    svg("text", { x: LEFT - 4, y: TOP + 8, "text-anchor": "end", class: "y-max" }, top),
    svg("text", { x: LEFT - 4, y: h - BOTTOM, "text-anchor": "end" }, bottom));
}

function xLabels(node, size, labels) {
  // First, middle and last: enough to read the axis, never overlapping.
  const { w, h } = size;
  const n = labels.length;
  const picks = n > 2 ? [0, Math.floor((n - 1) / 2), n - 1] : [...Array(n).keys()];
  const width = (w - LEFT) / n;
  for (const index of new Set(picks)) {
    const anchor = index === 0 && n > 2 ? "start" : index === n - 1 && n > 2 ? "end" : "middle";
    const x = anchor === "start" ? LEFT + index * width : anchor === "end"
      ? LEFT + (index + 1) * width : LEFT + (index + 0.5) * width;
    node.append(svg("text", { x, y: h - 6, "text-anchor": anchor, class: "x-label" },
      labels[index]));
  }
}

// Vertical bars: items are {count, label, attrs}.
function columns(node, size, items) {
  const { w, h } = size;
  frame(node, size);
  const top = Math.max(1, ...items.map((item) => item.count));
  axes(node, size, count(top), "0");
  const width = (w - LEFT) / Math.max(1, items.length);
  items.forEach((item, index) => {
    const height = (item.count / top) * (h - BOTTOM - TOP);
    node.append(svg("rect", {
      class: "bar", x: LEFT + index * width + 0.5, y: h - BOTTOM - height,
      width: Math.max(1, width - 1), height, "data-count": item.count,
      "data-label": item.label, ...item.attrs,
    }, title(item.label + ": " + count(item.count))));
  });
  xLabels(node, size, items.map((item) => item.label));
}

function drawTimeline(overview) {
  const { start, step, counts } = overview.timeline;
  text("timeline-step", "(" + count(overview.contexts) + " contexts; one bar per " +
    duration(step) + ")");
  columns(document.getElementById("timeline-chart"), WIDE, counts.map((n, index) => ({
    count: n,
    label: stamp(start + index * step, step),
    attrs: { "data-start": start + index * step },
  })));
}

function duration(step) {
  const units = [[86400, "day"], [3600, "hour"], [60, "minute"], [1, "second"]];
  for (const [size, name] of units) {
    if (step >= size && Number.isInteger(step / size)) {
      const n = step / size;
      return n === 1 ? name : n + " " + name + "s";
    }
  }
  return num(step * 1000) + " ms";
}

// Horizontal bars for the top values of a categorical field.
function bars(top, other) {
  const rows = [...top.map((item) => ({ label: labelOf(item.value), count: item.count }))];
  if (other > 0) rows.push({ label: "(other values)", count: other, other: true });
  const row = 20;
  const height = rows.length * row + 4;
  const node = frame(svg("svg", { class: "chart bars", role: "img" }), CARD, height);
  const most = Math.max(1, ...rows.map((item) => item.count));
  const labelWidth = 170;
  const room = CARD.w - labelWidth - 60;
  rows.forEach((item, index) => {
    const y = index * row + 2;
    const shown = item.label.length > 28 ? item.label.slice(0, 27) + "…" : item.label;
    node.append(svg("g", {
      class: "bar" + (item.other ? " other" : ""), "data-label": item.label,
      "data-count": item.count,
    },
    title(item.label + ": " + count(item.count)),
    svg("text", { class: "label", x: labelWidth - 6, y: y + 13, "text-anchor": "end" }, shown),
    svg("rect", { x: labelWidth, y, height: row - 5,
      width: Math.max(1, (item.count / most) * room) }),
    svg("text", { class: "count", x: labelWidth + (item.count / most) * room + 5, y: y + 13 },
      count(item.count))));
  });
  return node;
}

function binLabel(histogram, index) {
  const { edges, integers } = histogram;
  if (integers && edges[index + 1] - edges[index] === 1) return num(edges[index]);
  return num(edges[index]) + "–" + num(edges[index + 1]);
}

function histogramChart(histogram) {
  const node = svg("svg", { class: "chart histogram", role: "img" });
  columns(node, CARD, histogram.counts.map((n, index) => ({
    count: n,
    label: binLabel(histogram, index),
    attrs: { "data-low": histogram.edges[index], "data-high": histogram.edges[index + 1] },
  })));
  return node;
}

// One step line per segment value, each as its share of that value's contexts, so a
// small segment's shape is as readable as a large one's.
function segmentChart(histogram, segments) {
  const { w, h } = CARD;
  const node = frame(svg("svg", { class: "chart histogram segments", role: "img" }), CARD);
  const shares = segments.map((segment) => {
    const total = segment.counts.reduce((a, b) => a + b, 0) || 1;
    return segment.counts.map((n) => n / total);
  });
  const top = Math.max(0.01, ...shares.flat());
  axes(node, CARD, Math.round(top * 100) + "%", "0%");
  const bins = histogram.counts.length;
  const width = (w - LEFT) / bins;
  segments.forEach((segment, which) => {
    const points = [];
    shares[which].forEach((share, index) => {
      const y = h - BOTTOM - (share / top) * (h - BOTTOM - TOP);
      points.push(`${LEFT + index * width},${y}`, `${LEFT + (index + 1) * width},${y}`);
    });
    node.append(svg("polyline", {
      class: "segment-line", points: points.join(" "), stroke: COLORS[which % COLORS.length],
      "data-segment": segment.other ? "(other values)" : labelOf(segment.value),
      "data-counts": segment.counts.join(","),
    }, title((segment.other ? "(other values)" : labelOf(segment.value)) + ": " +
      count(segment.count) + " values")));
  });
  xLabels(node, CARD, histogram.counts.map((_, index) => binLabel(histogram, index)));
  return node;
}

function segmentTable(segments) {
  const legend = el("div", { className: "legend" });
  const rows = segments.map((segment, which) => {
    const name = segment.other ? "(other values)" : labelOf(segment.value);
    const swatch = el("span", { className: "swatch" });
    swatch.style.background = COLORS[which % COLORS.length];
    const item = el("span", { className: "legend-item" }, swatch, name);
    item.dataset.value = name;
    item.dataset.count = String(segment.count);
    legend.append(item);
    return el("tr", { className: "segment-row" },
      el("td", {}, name), el("td", { className: "num" }, count(segment.count)),
      el("td", { className: "num" }, num(segment.mean)),
      el("td", { className: "num" }, num(segment.p50)),
      el("td", { className: "num" }, num(segment.p95)));
  });
  const table = el("table", { className: "segments" },
    el("thead", {}, el("tr", {}, ...["value", "values", "mean", "p50", "p95"].map(
      (name) => el("th", {}, name)))),
    el("tbody", {}, ...rows));
  return [legend, table];
}

// Mean and p95 per time bucket.
function overTimeChart(overTime, timeline) {
  const { w, h } = CARD;
  const node = frame(svg("svg", { class: "chart over-time", role: "img" }), CARD);
  const values = overTime.flatMap((point) => [point.mean, point.p95])
    .filter((value) => typeof value === "number");
  let low = Math.min(...values);
  let high = Math.max(...values);
  if (!(high > low)) {
    high = low + 1;
  }
  axes(node, CARD, num(high), num(low));
  const buckets = timeline.counts.length;
  const width = (w - LEFT) / buckets;
  const x = (bucket) => LEFT + (bucket + 0.5) * width;
  const y = (value) => h - BOTTOM - ((value / 2 - low / 2) / (high / 2 - low / 2)) *
    (h - BOTTOM - TOP);
  for (const [key, cls] of [["p95", "p95-line"], ["mean", "mean-line"]]) {
    const points = overTime.map((point) => `${x(point.bucket)},${y(point[key])}`);
    node.append(svg("polyline", { class: cls, points: points.join(" ") }));
  }
  for (const point of overTime) {
    node.append(svg("circle", {
      class: "point", cx: x(point.bucket), cy: y(point.mean), r: 2, fill: "#3b6fd8",
      "data-bucket": point.bucket, "data-mean": point.mean, "data-p95": point.p95,
      "data-count": point.count,
    }, title(stamp(timeline.start + point.bucket * timeline.step, timeline.step) +
      ": mean " + num(point.mean) + ", p95 " + num(point.p95) + " (" + count(point.count) +
      " values)")));
  }
  xLabels(node, CARD, timeline.counts.map((_, index) =>
    stamp(timeline.start + index * timeline.step, timeline.step)));
  return node;
}

function statsList(numbers) {
  const list = el("dl", { className: "stats" });
  for (const key of ["mean", "p50", "p95", "min", "max"]) {
    const value = el("dd", { className: "stat-" + key }, num(numbers[key]));
    value.dataset.value = String(numbers[key]);
    list.append(el("div", {}, el("dt", {}, key), value));
  }
  if (numbers.sampled) list.append(el("div", {}, el("dt", {}, "from a sample")));
  return list;
}

function fieldCard(field, overview) {
  const kinds = { number: "number", category: "category", other: "objects" };
  const facts = [kinds[field.kind], count(field.count) + " contexts"];
  if (field.distinct) facts.push(count(field.distinct) + (field.distinct_capped ? "+" : "") +
    " distinct");
  const card = el("div", { className: "card field " + field.kind },
    el("h3", {}, field.name + " ", el("span", { className: "kind" }, facts.join(" · "))));
  card.dataset.field = field.name;
  card.dataset.kind = field.kind;
  if (field.kind === "number") {
    const numbers = field.numbers;
    card.append(statsList(numbers));
    if (numbers.min === numbers.max) {
      card.append(el("p", { className: "note constant" },
        "Every value is " + num(numbers.min) + "."));
    } else if (numbers.segments && overview.split) {
      const segments = numbers.segments.filter((segment) => segment.count > 0);
      card.append(el("h4", {}, "Distribution by " + overview.split.field));
      card.append(segmentChart(numbers.histogram, segments));
      card.append(...segmentTable(segments));
    } else {
      card.append(el("h4", {}, "Distribution"), histogramChart(numbers.histogram));
    }
    if (overview.timeline.counts.length > 1 && numbers.min !== numbers.max) {
      card.append(el("h4", {}, "Over time ", el("small", {}, "mean (line), p95 (dashed)")),
        overTimeChart(numbers.over_time, overview.timeline));
    }
  } else if (field.top) {
    card.append(bars(field.top, field.top_other || 0));
    if (field.numbers && field.kind !== "number") {
      card.append(statsList(field.numbers));
    }
  } else {
    card.append(el("p", { className: "note" }, "Objects or nulls: see a context's fields."));
  }
  return card;
}

function drawOverview(overview, current) {
  text("class-counts", count(overview.contexts) + " contexts · " +
    count(overview.fields_total) + " fields");
  drawTimeline(overview);
  const split = document.getElementById("split");
  const names = [...overview.splittable];
  if (current.split && !names.includes(current.split)) names.push(current.split);
  split.replaceChildren(el("option", { value: "" }, "nothing"),
    ...names.map((name) => el("option", { value: name }, name)));
  split.value = current.split;
  text("split-note", overview.split && overview.split.other_contexts
    ? "(values beyond the " + overview.split.values.length + " most common: other values)" : "");
  document.getElementById("field-cards").replaceChildren(
    ...overview.fields.map((field) => fieldCard(field, overview)));
  show("fields-more", overview.fields_truncated);
  text("fields-more", "The " + overview.fields.length + " most common of " +
    count(overview.fields_total) + " fields are shown.");
}

// -- tables -----------------------------------------------------------------------------

function chips(fields, clipped) {
  const items = Object.entries(fields).map(([name, value]) => {
    const chip = el("span", { className: "chip", title: name + " = " + readable(value) },
      el("span", { className: "key" }, name), " = " + short(value));
    return chip;
  });
  if (clipped) items.push(el("span", { className: "note" }, "(cut; click for all)"));
  return el("div", { className: "chips" }, ...items);
}

function drawContexts(cls, page, current) {
  text("contexts-class", cls);
  const first = page.total ? page.offset + 1 : 0;
  text("contexts-range", count(first) + "–" + count(page.offset + page.contexts.length) +
    " of " + count(page.total));
  document.getElementById("newer").disabled = page.offset === 0;
  document.getElementById("older").disabled = !page.truncated;
  fillTable("contexts-table", page.contexts.map((ctx) =>
    clickableRow(ctx.id === current.ctx, () => {
      scrollToDetail = true;
      go({ ctx: ctx.id, hoffset: 0 });
    },
      el("td", { className: "context-id" }, ctx.id),
      el("td", { className: "num" }, count(ctx.messages)),
      el("td", {}, when(ctx.last_seen)),
      el("td", { className: "fields" }, chips(ctx.fields, ctx.clipped)))));
}

function drawClasses(classes, current) {
  fillTable("classes-table", classes.map(([name, info]) =>
    clickableRow(name === current, () => go({ cls: name, ctx: "", offset: 0, split: "" }),
      el("td", { className: "class-name" }, name),
      el("td", { className: "num" }, count(info.contexts)),
      el("td", { className: "num" }, count(info.messages)),
      el("td", {}, when(info.last_seen)))));
}

function drawDetail(detail) {
  text("selected-context", detail.class + " / " + detail.id);
  fillTable("detail-fields", Object.entries(detail.fields).map(([name, value]) =>
    el("tr", {}, el("td", {}, name), el("td", { className: "value" }, readable(value)))));
  text("raw-json", JSON.stringify(detail.fields, null, 2));
  const params = new URLSearchParams({ user: detail.user, full: "1" });
  if (token) params.set("token", token);
  document.getElementById("raw-link").href = "/api/contexts/" +
    encodeURIComponent(detail.class) + "/" + encodeURIComponent(detail.id) + "?" + params;
  const offset = detail.history_offset;
  text("history-range", "(" + count(offset + 1) + "–" + count(offset + detail.history.length) +
    " of " + count(detail.history_total) + ")");
  document.getElementById("history-prev").disabled = offset === 0;
  document.getElementById("history-next").disabled =
    offset + detail.history.length >= detail.history_total;
  fillTable("detail-history", detail.history.map((msg, index) =>
    el("tr", {},
      el("td", { className: "num" }, offset + index + 1),
      el("td", {}, when(msg.arrived)),
      el("td", {}, msg.action),
      el("td", {}, msg.timestamp === null ? "" : stamp(msg.timestamp, 0.5)),
      el("td", { className: "fields" }, chips(msg.fields, false)))));
}

function drawUsers(users, chosen) {
  const several = users.length > 1;
  show("user-picker", several);
  show("user-single", users.length === 1);
  if (users.length === 1) text("user-name", users[0].user_id);
  if (!several) return;
  const picker = document.getElementById("user");
  picker.replaceChildren(...users.map((user) => el("option", { value: user.user_id },
    user.user_id + " (" + count(user.contexts) + " contexts)")));
  picker.value = chosen;
}

// -- one refresh ------------------------------------------------------------------------

function busiestRecent(classes) {
  // With nothing chosen, show what was sent last, and of equals the busiest: that is
  // what the app's developer is looking for.
  return Object.entries(classes).sort(([, a], [, b]) =>
    (b.last_seen - a.last_seen) || (b.contexts - a.contexts));
}

async function refresh() {
  if (busy) {
    again = true; // e.g. a click while a poll is in flight: render the new selection next
    return;
  }
  busy = true;
  clearTimeout(timer);
  try {
    await draw();
    document.getElementById("error").textContent = "";
  } catch (err) {
    document.getElementById("error").textContent = "Cannot read the collector: " + err.message;
  } finally {
    busy = false;
    if (again) {
      again = false;
      refresh();
    } else {
      timer = setTimeout(refresh, interval);
    }
  }
}

async function draw() {
  const current = state();
  const { users } = await api("/api/users");
  let user = current.user;
  if (!users.some((found) => found.user_id === user)) {
    user = users.length ? users[0].user_id : ""; // the user id that sent last
    // A link without a user id keeps its class and context; a stale user id does not.
    if (user) settle(current.user ? { user, cls: "", ctx: "", offset: 0, split: "" } : { user });
  }
  drawUsers(users, user);
  show("no-data", users.length === 0);
  const status = document.getElementById("status");
  if (!user) {
    show("class-view", false);
    fillTable("classes-table", []);
    status.textContent = "0 messages · updated " + new Date().toLocaleTimeString();
    status.dataset.refreshes = String(Number(status.dataset.refreshes || 0) + 1);
    return;
  }
  const [health, listing] = await Promise.all([
    api("/api/health", { user }), api("/api/classes", { user })]);
  const classes = busiestRecent(listing.classes);
  let cls = current.cls;
  if (!classes.some(([name]) => name === cls)) {
    cls = classes.length ? classes[0][0] : "";
    if (cls) settle({ cls, ctx: "", offset: 0, split: "" });
  }
  drawClasses(classes, cls);
  show("classes-more", listing.truncated);
  text("classes-more", "The " + classes.length + " most recent of " + count(listing.total) +
    " classes are shown.");
  show("class-view", !!cls);
  status.textContent = count(health.messages) + " messages, " + count(health.contexts) +
    " contexts · updated " + new Date().toLocaleTimeString();
  status.dataset.refreshes = String(Number(status.dataset.refreshes || 0) + 1);
  if (!cls) return;
  const view = { ...state(), user, cls };
  text("selected-class", cls);
  const [overview, page, detail] = await Promise.allSettled([
    api("/api/overview", { class: cls, user, split: view.split }),
    api("/api/contexts", { class: cls, user, limit: PAGE, offset: view.offset }),
    view.ctx ? api("/api/contexts/" + encodeURIComponent(cls) + "/" +
      encodeURIComponent(view.ctx), { user, history_limit: HISTORY_PAGE,
      history_offset: view.hoffset }) : Promise.resolve(null),
  ]);
  if (overview.status === "fulfilled") {
    // Unchanged data is not drawn again: a chart someone is pointing at stays put.
    const key = JSON.stringify([overview.value, view.split]);
    if (key !== drawnOverview) drawOverview(overview.value, view);
    drawnOverview = key;
    // A large class costs the server more to summarise: poll it less often.
    interval = Math.min(MAX_REFRESH_MS, Math.max(REFRESH_MS, overview.value.compute_ms * 5));
  }
  show("overview-error", overview.status === "rejected");
  if (overview.status === "rejected") {
    text("overview-error", "Cannot draw this class: " + overview.reason.message);
  }
  if (page.status === "fulfilled") drawContexts(cls, page.value, view);
  const shown = detail.status === "fulfilled" && detail.value;
  if (shown) drawDetail(detail.value);
  show("detail-section", !!shown);
  if (shown && scrollToDetail) {
    // A context just picked in the list: bring its fields into view.
    document.getElementById("detail-section").scrollIntoView({ block: "start" });
  }
  scrollToDetail = false;
  if (page.status === "rejected") throw page.reason;
}

window.addEventListener("hashchange", refresh);
document.getElementById("user").addEventListener("change", (event) =>
  go({ user: event.target.value, cls: "", ctx: "", offset: 0, split: "" }));
document.getElementById("split").addEventListener("change", (event) =>
  go({ split: event.target.value }));
document.getElementById("newer").addEventListener("click", () =>
  go({ offset: Math.max(0, state().offset - PAGE) }));
document.getElementById("older").addEventListener("click", () =>
  go({ offset: state().offset + PAGE }));
document.getElementById("history-prev").addEventListener("click", () =>
  go({ hoffset: Math.max(0, state().hoffset - HISTORY_PAGE) }));
document.getElementById("history-next").addEventListener("click", () =>
  go({ hoffset: state().hoffset + HISTORY_PAGE }));
document.getElementById("close-detail").addEventListener("click", () => go({ ctx: "" }));
refresh();
