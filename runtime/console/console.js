// Warden console: polls /status (and /history) every second and renders them; operator
// commands POST to /commands/<name> with the bearer token and a reason, like the CLI.
// No framework and no build step: the page must work on a machine without internet.
"use strict";

const $ = (id) => document.getElementById(id);
const POLL_MS = 1000;

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) tr.appendChild(cell instanceof Node ? cell : el("td", cell));
  return tr;
}

function fill(tableId, rows) {
  const body = document.querySelector(`#${tableId} tbody`);
  body.replaceChildren(...rows);
}

const money = (v) => (typeof v === "number" ? (v >= 0 ? "+" : "") + v.toFixed(2) : "-");
const price = (v) => (typeof v === "number" ? v.toLocaleString("en-US", {minimumFractionDigits: 2, maximumFractionDigits: 2}) : "-");
const signed = (v) => el("td", money(v), typeof v === "number" ? (v < 0 ? "neg" : v > 0 ? "pos" : "") : "");

function duration(seconds) {
  let s = Math.max(0, Math.floor(seconds || 0));
  const d = Math.floor(s / 86400); s -= d * 86400;
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  return d ? `${d}d${h}h` : h ? `${h}h${m}m` : m ? `${m}m${s}s` : `${s}s`;
}

function errorText(error) {
  if (!error) return "";
  if (typeof error === "object") return `${error.type || error.kind || "Error"}: ${error.message || ""}`;
  return String(error);
}

function info(node) {
  const d = node.details || {};
  if ("position" in d) return d.position + (d.status && d.status !== "active" ? ` (${d.status})` : "");
  if (String(node.id).startsWith("feed:") && d.status) return d.status;
  return "";
}

function command(name, body) {
  const reason = $("reason").value.trim();
  const result = $("result");
  if (!reason) {
    result.textContent = `${name}: a reason is required`;
    result.className = "bad";
    $("reason").focus();
    return Promise.resolve(false);
  }
  const headers = {"Content-Type": "application/json"};
  const token = $("token").value.trim();
  if (token) headers.Authorization = `Bearer ${token}`;
  result.textContent = `${name}: sending…`;
  result.className = "";
  return fetch(`/commands/${name}`, {method: "POST", headers, body: JSON.stringify({reason, ...body})})
    .then((r) => r.json().then((answer) => [r.status, answer]))
    .then(([status, answer]) => {
      const ok = status === 200;
      const said = Object.entries(answer.result || {}).filter(([, v]) => v === null || typeof v !== "object")
        .map(([k, v]) => `${k}=${v}`);  // what happened in short; the page shows the rest
      result.textContent = ok ? `${name}: accepted` + (said.length ? ` (${said.join(", ")})` : "")
                              : `${name}: refused (HTTP ${status}): ${answer.error || ""}`;
      result.className = ok ? "ok" : "bad";
      poll();
      return ok;
    })
    .catch((e) => { result.textContent = `${name}: ${e}`; result.className = "bad"; return false; });
}

function button(label, name, body) {
  const b = el("button", label);
  b.dataset.command = name;
  b.addEventListener("click", () => command(name, body));
  return b;
}

function renderHeader(s) {
  $("node").textContent = `${s.node} (pid ${s.pid})`;
  for (const key of ["mode", "trading"]) { $(key).textContent = s[key]; $(key).className = s[key]; }
  const gate = s.gate || {};
  const closed = Object.entries(gate.symbols || {}).filter(([, g]) => !g.open).map(([sym]) => sym);
  $("gate").textContent = gate.open ? (closed.length ? `open (closed: ${closed.join(", ")})` : "open") : "CLOSED";
  $("gate").className = gate.open ? (closed.length ? "warn" : "open") : "closed";
  $("uptime").textContent = duration(s.uptime_s);
}

function renderGates(s) {
  const gate = s.gate || {};
  fill("gates", Object.entries(gate.symbols || {}).map(([symbol, g]) => {
    const tr = row([symbol, el("td", g.open ? "open" : "closed", g.open ? "open" : "closed"),
                    el("td", (g.reasons || []).join("; "), "error")]);
    tr.dataset.symbol = symbol;
    return tr;
  }));
  $("gate-reasons").replaceChildren(...(gate.reasons || []).map((r) => el("li", r)));
}

function renderBreakers(s) {
  fill("breakers", (s.breakers || []).map((b) => {
    const tripped = String(b.state).toLowerCase() === "tripped";
    const actions = el("td");
    if (tripped) actions.appendChild(button("reset", "breaker-reset", {name: b.name}));
    return row([b.name, el("td", b.state, tripped ? "tripped" : "ok"), el("td", b.reason || "", "error"), actions]);
  }));
}

function stopText(stop) {
  if (!stop || stop.level === null || stop.level === undefined) return "-";
  const where = ["local", "exchange"].filter((w) => stop[w]);
  return `${price(stop.level)} (${where.length ? where.join("+") : "NOT ARMED"})`;
}

function renderPositions(s) {
  fill("positions", (s.positions || []).map((p) => {
    const open = p.quantity > 0;
    const stop = stopText(p.stop);
    const tr = row([p.strategy, p.symbol, p.position, open ? p.quantity : "-", price(p.entry_price),
                    price(p.mark_price), open ? signed(p.unrealized_pnl) : "-", signed(p.realized_pnl),
                    el("td", stop, stop.includes("NOT ARMED") ? "bad" : ""),
                    p.pending_order ? `${p.pending_order.purpose} ${p.pending_order.client_order_id}` : ""]);
    tr.dataset.strategy = p.strategy;
    return tr;
  }));
  const x = s.session || {};
  $("session").textContent = x.capital === undefined ? "" :
    `rapid-loss breaker: session P&L ${money(x.pnl)} (realized ${money(x.realized)}, unrealized ${money(x.unrealized)}); ` +
    `breaker at -${price(x.session_loss_limit)} per session, -${price(x.trade_loss_limit)} per trade, ` +
    `losses in a row ${x.consecutive_losses}/${x.max_consecutive_losses}`;
}

let selectedNode = null;

function renderNode(s) {
  const panel = $("node-panel");
  let found = null;
  const find = (node) => { if (node.id === selectedNode) found = node; (node.children || []).forEach(find); };
  if (selectedNode && s.tree) find(s.tree);
  panel.hidden = !found;
  if (!found) return;
  const {children, ...fields} = found;
  fields.children = (children || []).map((c) => c.id);
  $("node-id").textContent = selectedNode;
  $("node-details").textContent = JSON.stringify(fields, null, 2);
}

function renderTree(s) {
  const rows = [];
  const walk = (node, depth) => {
    const id = String(node.id);
    const actions = el("td");
    if (id.startsWith("strategy:")) {
      const sid = id.slice("strategy:".length);
      for (const action of ["stop", "start", "enable", "disable"]) actions.appendChild(button(action, `strategy-${action}`, {id: sid}));
    }
    const tr = row([el("td", "\u00a0\u00a0".repeat(depth) + id), el("td", node.state, node.state), node.restarts ?? 0,
                    node.generation ?? "-", info(node), el("td", errorText(node.last_error), "error"), actions]);
    tr.dataset.node = id;
    tr.dataset.state = node.state;
    if (id === selectedNode) tr.className = "selected";
    tr.cells[0].addEventListener("click", () => { selectedNode = id; renderTree(s); renderNode(s); });
    rows.push(tr);
    for (const child of node.children || []) walk(child, depth + 1);
  };
  if (s.tree) walk(s.tree, 0);
  fill("tree", rows);
}

function renderOrders(history) {
  fill("orders", (history.orders || []).map((o) => row([
    o.at ? new Date(o.at * 1000).toISOString().slice(0, 19).replace("T", " ") : "-", o.strategy || "-",
    o.purpose || "-", o.side || "-", o.quantity ?? "-", el("td", o.outcome || "OPEN", o.outcome === "FILLED" ? "ok" : o.outcome ? "warn" : ""),
    price(o.avg_price), o.client_order_id, el("td", o.detail || "", "error")])));
}

let polling = false;
function poll() {
  if (polling) return;
  polling = true;
  Promise.all([fetch("/status", {cache: "no-store"}).then((r) => r.json()),
               fetch("/history?limit=20&since=1d", {cache: "no-store"}).then((r) => (r.ok ? r.json() : {orders: []})).catch(() => ({orders: []}))])
    .then(([status, history]) => {
      renderHeader(status); renderGates(status); renderBreakers(status); renderPositions(status); renderTree(status);
      renderNode(status);
      renderOrders(history);
      $("conn").textContent = `updated ${new Date().toISOString().slice(11, 19)}`;
      $("conn").className = "ok";
      document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
    })
    .catch((e) => { $("conn").textContent = `unreachable: ${e}`; $("conn").className = "bad"; })
    .finally(() => { polling = false; });
}

$("node-close").addEventListener("click", () => { selectedNode = null; $("node-panel").hidden = true; poll(); });
$("halt").addEventListener("click", () => command("halt", {}));
$("resume").addEventListener("click", () => command("resume", {}));
$("token").value = sessionStorage.getItem("warden-token") || "";
$("token").addEventListener("change", () => sessionStorage.setItem("warden-token", $("token").value));
poll();
setInterval(poll, POLL_MS);
