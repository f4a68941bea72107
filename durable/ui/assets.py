"""The dashboard's stylesheet and script, served from the package itself: no page
fetches anything from the internet, and the Content-Security-Policy allows scripts and
styles from the dashboard's own origin only (no inline script can run)."""

from __future__ import annotations

CSS = """
:root { --fg:#1d232b; --muted:#66707c; --line:#dde2e8; --bg:#f6f7f9; --accent:#2f6fde;
  --ok:#2a9d5c; --bad:#d1453b; --warn:#c98a12; --wait:#7b61c9; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui, sans-serif; color:var(--fg); background:var(--bg); }
header { background:#1d232b; color:#fff; padding:.6rem 1.2rem; display:flex; gap:1.4rem;
  align-items:center; }
header a { color:#cfd8e3; text-decoration:none; } header a.here, header a:hover { color:#fff; }
header strong { font-size:1.05rem; margin-right:1rem; }
main { padding:1rem 1.2rem; max-width:1400px; }
h1 { font-size:1.3rem; margin:.2rem 0 1rem; } h2 { font-size:1.05rem; margin:1.4rem 0 .5rem; }
table { border-collapse:collapse; width:100%; background:#fff; border:1px solid var(--line); }
th, td { text-align:left; padding:.35rem .6rem; border-bottom:1px solid var(--line);
  vertical-align:top; }
th { background:#eef1f5; font-weight:600; font-size:.85rem; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
pre { background:#fff; border:1px solid var(--line); padding:.6rem; overflow:auto;
  max-height:28rem; white-space:pre-wrap; word-break:break-word; margin:0; }
.state { display:inline-block; padding:0 .45rem; border-radius:.7rem; font-size:.8rem;
  color:#fff; background:var(--muted); }
.state-complete { background:var(--ok); } .state-failed { background:var(--bad); }
.state-active { background:var(--accent); } .state-suspended { background:var(--wait); }
.state-ready { background:var(--warn); } .state-cancelled { background:#8a939e; }
.cards { display:flex; gap:.8rem; flex-wrap:wrap; margin-bottom:1rem; }
.card { background:#fff; border:1px solid var(--line); padding:.6rem 1rem; min-width:8rem; }
.card b { display:block; font-size:1.5rem; }
a.card { color:inherit; text-decoration:none; } a.card:hover { border-color:var(--accent); }
form.filters { display:flex; gap:.6rem; flex-wrap:wrap; align-items:end; margin-bottom:.8rem; }
form.filters label { display:flex; flex-direction:column; font-size:.8rem; color:var(--muted); }
input, select, textarea, button { font:inherit; padding:.25rem .4rem; }
button { cursor:pointer; border:1px solid var(--line); background:#fff; }
button.danger { border-color:var(--bad); color:var(--bad); }
.actions { display:flex; gap:1.5rem; flex-wrap:wrap; align-items:start; }
.actions form { background:#fff; border:1px solid var(--line); padding:.6rem;
  display:flex; flex-direction:column; gap:.4rem; }
.muted { color:var(--muted); } .flash { background:#fff7d6; border:1px solid #ecd57a;
  padding:.5rem .8rem; margin-bottom:1rem; }
.flash.error { background:#fde8e6; border-color:#eba59f; }
.gap { display:inline-block; height:.6rem; background:var(--accent); vertical-align:middle;
  min-width:1px; }
.lapsing { color:var(--bad); font-weight:600; }
dl.meta { display:grid; grid-template-columns:max-content 1fr; gap:.2rem 1rem; margin:0; }
dl.meta dt { color:var(--muted); }
svg.chart { background:#fff; border:1px solid var(--line); }
.pager { margin-top:.6rem; }
"""

# Every value goes into the page through textContent, never innerHTML: task names,
# logs and payloads come from untrusted workflows.
JS = """
"use strict";
document.addEventListener("submit", (ev) => {
  const form = ev.target;
  const question = form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) ev.preventDefault();
});

function cell(row, text, cls) {
  const td = document.createElement("td");
  if (cls) td.className = cls;
  td.textContent = text;
  row.appendChild(td);
  return td;
}

function stateBadge(td, state) {
  td.textContent = "";
  const span = document.createElement("span");
  span.className = "state state-" + state;
  span.textContent = state;
  td.appendChild(span);
}

async function refreshTasks(body) {
  const url = body.getAttribute("data-live");
  const response = await fetch(url, {credentials: "same-origin"});
  if (!response.ok) return;
  const data = await response.json();
  const rows = [];
  for (const t of data.tasks) {
    const tr = document.createElement("tr");
    tr.setAttribute("data-id", String(t.id));
    const idCell = cell(tr, "", "num");
    const link = document.createElement("a");
    link.href = "/tasks/" + encodeURIComponent(String(t.id));
    link.textContent = String(t.id);
    idCell.appendChild(link);
    cell(tr, t.name);
    stateBadge(cell(tr, ""), t.state);
    cell(tr, t.created_at);
    cell(tr, t.updated_at);
    cell(tr, t.duration, "num");
    cell(tr, String(t.attempts), "num");
    cell(tr, t.parent_id === null ? "" : String(t.parent_id), "num");
    rows.push(tr);
  }
  body.replaceChildren(...rows);
}

async function refreshTask(box) {
  const url = box.getAttribute("data-live");
  const after = box.getAttribute("data-after");
  const response = await fetch(url + "?after=" + encodeURIComponent(after),
                               {credentials: "same-origin"});
  if (!response.ok) return false;
  const data = await response.json();
  const log = document.getElementById("log");
  for (const chunk of data.logs) {
    const span = document.createElement("span");
    if (chunk.stream === "stderr") span.className = "muted";
    span.textContent = chunk.text;
    log.appendChild(span);
  }
  box.setAttribute("data-after", String(data.after));
  const badge = document.getElementById("state");
  if (badge && badge.textContent !== data.state) {
    badge.textContent = data.state;
    badge.className = "state state-" + data.state;
  }
  if (data.ended && box.getAttribute("data-state") !== data.state) {
    window.location.reload();  // show the result, the error and the whole history
    return false;
  }
  return !data.ended;
}

function every(ms, fn) {
  const tick = async () => {
    let again = true;
    try { again = (await fn()) !== false; } catch (e) { again = true; }
    if (again) window.setTimeout(tick, ms);
  };
  window.setTimeout(tick, ms);
}

window.addEventListener("DOMContentLoaded", () => {
  const body = document.querySelector("tbody[data-live]");
  if (body) every(1500, () => refreshTasks(body));
  const box = document.querySelector("[data-live][data-after]");
  if (box) every(1000, () => refreshTask(box));
});
"""
