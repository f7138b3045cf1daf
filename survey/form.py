"""The participant's page: one HTML file with inline CSS and JS, used by the server and the static export.

Per screen: the content and style on top, the outputs large and side by side (2x2 on a phone), both
questions below. Click or press 1–4 to answer the active question; Enter / → for the next screen,
← for the previous one; double-click an output (or press Z) to zoom it to full size. A progress bar
shows how far the participant is. Answers are sent as they are given (served mode) or kept in the
browser's localStorage and downloaded as a CSV at the end (static mode); either way closing the
browser and coming back resumes where the participant stopped.
"""
from __future__ import annotations

import html
import json

PAGE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Style-transfer study</title>
<style>
 body{font-family:system-ui,-apple-system,sans-serif;margin:0;background:#fafafa;color:#222}
 header{position:sticky;top:0;background:#fff;border-bottom:1px solid #ddd;padding:.5em 1em;z-index:2}
 #bar{height:6px;background:#eee;border-radius:3px;margin-top:.4em}#fill{height:6px;background:#3a7;border-radius:3px;width:0}
 main{max-width:1500px;margin:0 auto;padding:1em}
 .refs{display:flex;gap:1em;justify-content:center;align-items:flex-start}
 .refs figure{margin:0;text-align:center}.refs img{max-height:22vh;max-width:40vw;border:1px solid #ccc}
 .outs{display:grid;grid-template-columns:repeat(auto-fit,minmax(260px,1fr));gap:.8em;margin:1em 0}
 .opt{background:#fff;border:3px solid transparent;border-radius:6px;padding:.3em;text-align:center;cursor:zoom-in}
 .opt img{width:100%;height:auto;display:block}
 .opt .k{font-weight:600;font-size:.9em;color:#555}
 .q{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.6em 1em;margin:.6em 0}
 .q.active{border-color:#3a7;box-shadow:0 0 0 2px #3a74}
 .q button{font-size:1em;margin:.2em;padding:.45em 1em;border-radius:4px;border:1px solid #aaa;background:#f4f4f4;cursor:pointer}
 .q button.sel{background:#3a7;color:#fff;border-color:#3a7}
 nav{display:flex;justify-content:space-between;margin:1em 0}nav button{font-size:1em;padding:.5em 1.2em}
 #zoom{display:none;position:fixed;inset:0;background:#000d;z-index:5;overflow:auto;cursor:zoom-out}
 #zoom img{display:block;margin:auto;max-width:none}
 .hint{color:#666;font-size:.85em}
 #done{display:none;text-align:center;padding:3em}
 @media (max-width:600px){.outs{grid-template-columns:1fr 1fr}.refs img{max-width:44vw}}
</style></head>
<body>
<header><strong>Which stylization is better?</strong> <span id="progress"></span>
<div id="bar"><div id="fill"></div></div>
<div class="hint">Keys: 1–4 answer the highlighted question · Enter/→ next · ← back · double-click or Z to zoom</div></header>
<main>
 <div id="screen">
  <div class="refs"><figure><img id="content" alt="content photo"><figcaption>content</figcaption></figure>
  <figure><img id="style" alt="style painting"><figcaption>style</figcaption></figure></div>
  <div class="outs" id="outs"></div>
  <div id="questions"></div>
  <nav><button id="prev">← Back</button><button id="next">Next →</button></nav>
 </div>
 <div id="done"><h2>Thank you!</h2><p id="donemsg">Your answers are saved.</p>
  <p><button id="download" style="display:none">Download my responses</button></p></div>
</main>
<div id="zoom"><img id="zoomimg" alt="zoomed output"></div>
<script>
const CFG = __CONFIG__;
const Q = CFG.questions;                 // {id: text}
const QIDS = Object.keys(Q);
let state = {items: [], answers: {}, index: 0, token: CFG.token};
const key = (i, q) => i + "|" + q;
const now = () => new Date().toISOString();
let shownAt = now();

async function load() {
  if (CFG.mode === "served") {
    const r = await fetch(CFG.api + "/state");
    if (!r.ok) { document.body.innerHTML = "<main><h2>This invitation link is not valid.</h2></main>"; return; }
    const s = await r.json();
    state.items = s.items; state.answers = s.answers;
  } else {
    state.items = CFG.items;
    state.answers = JSON.parse(localStorage.getItem("study:" + CFG.token) || "{}");
  }
  const first = state.items.findIndex((it, i) => QIDS.some(q => !(key(i, q) in state.answers)));
  state.index = first < 0 ? state.items.length : first;
  render();
}

function img(set, name) { return CFG.images + "/" + String(set).padStart(2, "0") + "/" + name + ".png"; }

function render() {
  const n = state.items.length;
  const answered = Object.keys(state.answers).length / QIDS.length;
  document.getElementById("progress").textContent = Math.min(state.index + 1, n) + " / " + n;
  document.getElementById("fill").style.width = (100 * answered / n) + "%";
  if (state.index >= n) { finish(); return; }
  const it = state.items[state.index];
  document.getElementById("content").src = img(it.set_id, "content");
  document.getElementById("style").src = img(it.set_id, "style");
  const outs = document.getElementById("outs"); outs.innerHTML = "";
  it.order.forEach((m, j) => {
    const d = document.createElement("div"); d.className = "opt"; d.dataset.pos = j;
    d.innerHTML = `<div class="k">${j + 1}</div><img alt="output ${j + 1}" src="${img(it.set_id, m)}">`;
    d.ondblclick = () => zoom(img(it.set_id, m));
    outs.appendChild(d);
  });
  const qs = document.getElementById("questions"); qs.innerHTML = "";
  QIDS.forEach(q => {
    const box = document.createElement("div"); box.className = "q"; box.dataset.q = q;
    box.innerHTML = `<div>${Q[q]}</div>` + it.order.map((m, j) =>
      `<button data-q="${q}" data-pos="${j}">${j + 1}</button>`).join("");
    qs.appendChild(box);
  });
  qs.querySelectorAll("button").forEach(b => b.onclick = () => answer(b.dataset.q, +b.dataset.pos));
  shownAt = now();
  mark();
}

function active() { return QIDS.find(q => !(key(state.index, q) in state.answers)); }

function mark() {
  const it = state.items[state.index]; const act = active();
  document.querySelectorAll(".q").forEach(box => {
    const q = box.dataset.q; box.classList.toggle("active", q === act);
    const a = state.answers[key(state.index, q)];
    box.querySelectorAll("button").forEach(b => b.classList.toggle("sel", a !== undefined && it.order[+b.dataset.pos] === a));
  });
}

async function answer(q, pos) {
  const idx = state.index, it = state.items[idx], chosen = it.order[pos], k = key(idx, q);
  const before = state.answers[k];
  const rec = {index: idx, question: q, chosen: chosen, shown_at: shownAt, answered_at: now()};
  state.answers[k] = chosen;           // optimistic: the next key press answers the next question
  mark(); render_progress();
  if (CFG.mode === "served") {
    let ok = false;
    try { ok = (await fetch(CFG.api + "/answer", {method: "POST", headers: {"Content-Type": "application/json"},
                                                   body: JSON.stringify(rec)})).ok; } catch (e) { ok = false; }
    if (!ok) {
      if (before === undefined) delete state.answers[k]; else state.answers[k] = before;
      mark(); render_progress(); alert("Could not save the answer. Please check the connection and try again."); return;
    }
  } else {
    const log = JSON.parse(localStorage.getItem("studylog:" + CFG.token) || "{}");
    log[k] = rec; localStorage.setItem("studylog:" + CFG.token, JSON.stringify(log));
    localStorage.setItem("study:" + CFG.token, JSON.stringify(state.answers));
  }
  if (idx === state.index && !active()) setTimeout(next, 250);
}

function render_progress() {
  const n = state.items.length, answered = Object.keys(state.answers).length / QIDS.length;
  document.getElementById("fill").style.width = (100 * answered / n) + "%";
}
function next() { if (state.index < state.items.length && !active()) { state.index++; render(); } }
function prev() { if (state.index > 0) { state.index--; render(); } }
function zoom(src) { document.getElementById("zoomimg").src = src; document.getElementById("zoom").style.display = "block"; }
document.getElementById("zoom").onclick = () => document.getElementById("zoom").style.display = "none";
document.getElementById("next").onclick = next;
document.getElementById("prev").onclick = prev;
document.addEventListener("keydown", e => {
  if (document.getElementById("zoom").style.display === "block") { document.getElementById("zoom").style.display = "none"; return; }
  const n = parseInt(e.key, 10);
  if (n >= 1 && n <= 9 && state.index < state.items.length) {
    const q = active(); if (q && n <= state.items[state.index].order.length) answer(q, n - 1);
  } else if (e.key === "Enter" || e.key === "ArrowRight") next();
  else if (e.key === "ArrowLeft") prev();
  else if ((e.key === "z" || e.key === "Z") && state.index < state.items.length) {
    const it = state.items[state.index]; zoom(img(it.set_id, it.order[0]));
  }
});

function finish() {
  document.getElementById("screen").style.display = "none";
  document.getElementById("done").style.display = "block";
  if (CFG.mode === "served") { fetch(CFG.api + "/finish", {method: "POST"}); return; }
  const btn = document.getElementById("download"); btn.style.display = "inline";
  document.getElementById("donemsg").textContent = "Please download your responses and send the file back.";
  btn.onclick = () => {
    const log = JSON.parse(localStorage.getItem("studylog:" + CFG.token) || "{}");
    const head = "participant,set,kind,question,chosen,displayed_order,shown_at,answered_at,simulated";
    const rows = Object.values(log).map(r => { const it = state.items[r.index];
      return [CFG.participant, it.set_id, it.kind, r.question, r.chosen, it.order.join(";"), r.shown_at, r.answered_at, 0].join(","); });
    const blob = new Blob([head + "\n" + rows.join("\n") + "\n"], {type: "text/csv"});
    const a = document.createElement("a"); a.href = URL.createObjectURL(blob);
    a.download = "responses_" + CFG.participant + ".csv"; a.click();
  };
}
load();
</script></body></html>
"""


def render_page(config: dict) -> str:
    """The page with ``config`` embedded (mode, token, api, images, questions; items in static mode).
    The JSON is escaped so no value can close the script element."""
    blob = json.dumps(config).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return PAGE.replace("__CONFIG__", blob)


def thank_you() -> str:
    return "<!doctype html><meta charset='utf-8'><title>Thank you</title><h2>Thank you!</h2>"


def escape(text: str) -> str:
    return html.escape(text)
