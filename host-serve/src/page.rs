//! The live page: plain HTML and a little script that polls `/api/state` once a second.
//! Nothing is fetched from anywhere else and nothing is built.

pub const PAGE: &str = r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>TMF632 active-active: serve</title>
<style>
 body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
 h1 { font-size: 1.3em; margin: 0 0 .3em; } h2 { font-size: 1.05em; margin: 1.2em 0 .4em; }
 .muted { color: #777; } .regions { display: flex; gap: 1em; flex-wrap: wrap; }
 .region { border: 1px solid #ccc; border-radius: 6px; padding: .6em .8em; min-width: 18em; flex: 1; }
 .region h3 { margin: 0 0 .3em; font-size: 1em; }
 table { border-collapse: collapse; width: 100%; } td, th { text-align: left; padding: 2px 6px; border-bottom: 1px solid #eee; vertical-align: top; }
 th { font-weight: 600; } code, pre { font: 12px ui-monospace, monospace; } pre { margin: 0; white-space: pre-wrap; }
 .cut { color: #b00; font-weight: 600; } .ok { color: #070; } .swap { color: #05a; }
 input { font: inherit; padding: 2px 6px; }
</style>
</head>
<body>
<h1>TMF632 parties, three regions, one process</h1>
<div class="muted" id="summary">loading…</div>

<h2>Replication</h2>
<div id="links"></div>

<h2>Find a party</h2>
<form id="search"><input id="party" placeholder="party id" size="30"> <button>Show in every region</button></form>
<div class="regions" id="found"></div>

<h2>Regions</h2>
<div class="regions" id="regions"></div>

<h2>Conflicts</h2>
<table id="conflicts"><thead><tr><th>when</th><th>party</th><th>resolved in</th><th>relation</th><th>decision</th><th>policy</th><th>what differed (local / remote / result)</th></tr></thead><tbody></tbody></table>

<h2>Policy</h2>
<div id="policy"></div>

<h2>Notifications</h2>
<div id="hub"></div>

<script>
"use strict";
let party = "";
const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const short = (d) => d ? esc(String(d).slice(0, 12)) : "<span class=muted>host</span>";
const val = (v) => v === undefined ? "<span class=muted>–</span>" : "<code>" + esc(JSON.stringify(v)) + "</code>";
const time = (ms) => new Date(ms).toISOString().slice(11, 23);

function render(s) {
  document.getElementById("summary").textContent =
    `tenant ${s.tenant} · replication lag ${s.lagMs} ms · ${s.counters.replicated} writes replicated · ` +
    `${s.counters.streamRecords} stream records · ${s.counters.reconciled} reconciled · ${s.counters.redriven} redriven`;
  const backlog = s.backlog.map((b) => `${esc(b.from)} → ${esc(b.to)}: ${b.writes} in flight`).join("; ") || "nothing in flight";
  const cuts = s.cuts.length ? s.cuts.map((c) => `<span class=cut>${esc(c.from)} ✕ ${esc(c.to)}</span>`).join(" ") : "<span class=ok>no partition</span>";
  const stream = s.stream.map((r) => `${esc(r.region)}: ${r.records}`).join(", ");
  document.getElementById("links").innerHTML = `<div id=cuts>${cuts}</div><div id=backlog>${backlog}</div><div class=muted>unreconciled stream records: ${stream}</div>`;
  document.getElementById("regions").innerHTML = s.regions.map((r) =>
    `<div class=region data-region="${esc(r.name)}"><h3>${esc(r.name)}</h3><div class=muted>${r.parties} parties · ${r.deadLetters} dead letters</div>
     <table><tr><th>id</th><th>name</th><th>status</th><th>version</th></tr>` +
     r.recent.map((p) => `<tr><td>${esc(p.id)}</td><td>${esc(p.name)}</td><td>${esc(p.status)}</td><td><code>${esc(p.etag)}</code></td></tr>`).join("") +
     `</table></div>`).join("");
  document.getElementById("found").innerHTML = party ? s.regions.map((r) =>
    `<div class=region data-found="${esc(r.name)}"><h3>${esc(r.name)}</h3>` +
    (r.found ? `<div class=muted>version <code>${esc(r.found.etag)}</code></div><pre>${esc(JSON.stringify(r.found.party, null, 1))}</pre>` : `<span class=muted>not here</span>`) +
    `</div>`).join("") : "";
  document.querySelector("#conflicts tbody").innerHTML = s.conflicts.map((c) =>
    `<tr class=conflict data-party="${esc(c.party)}"><td>${time(c.atMs)}</td><td>${esc(c.party)}</td><td>${esc(c.region)}</td><td>${esc(c.relation)}</td>` +
    `<td>${esc(c.decision)}${c.reason ? " <span class=muted>(" + esc(c.reason) + ")</span>" : ""}</td><td><code>${short(c.policy)}</code></td>` +
    `<td>${c.diff.map((d) => `<div><b>${esc(d.field)}</b>: ${val(d.local)} / ${val(d.remote)} → ${val(d.result)}</div>`).join("")}</td></tr>`).join("") ||
    `<tr><td colspan=7 class=muted>no conflict yet</td></tr>`;
  document.getElementById("policy").innerHTML = `active for ${esc(s.tenant)}: <code>${short(s.policy)}</code>` +
    s.swaps.map((w) => `<div class=swap>${time(w.atMs)} ${esc(w.tenant)}: ${w.from ? short(w.from) : "(start)"} → ${short(w.to)}</div>`).join("");
  const h = s.hub;
  document.getElementById("hub").innerHTML = `${h.listeners} listeners registered (POST /{region}/tmf-api/party/v5/hub) · ${h.delivered} events delivered · ${h.deadLetters.length} undeliverable` +
    h.deadLetters.slice(-10).map((d) => `<div class=cut>${esc(d.eventId)} → ${esc(d.callback)}: ${esc(d.reason)}</div>`).join("");
}

async function poll() {
  try {
    const r = await fetch("/api/state" + (party ? "?party=" + encodeURIComponent(party) : ""));
    render(await r.json());
  } catch (e) {
    document.getElementById("summary").textContent = "the server does not answer: " + e;
  }
}
document.getElementById("search").addEventListener("submit", (e) => {
  e.preventDefault();
  party = document.getElementById("party").value.trim();
  poll();
});
const fromUrl = new URLSearchParams(location.search).get("party");
if (fromUrl) { party = fromUrl; document.getElementById("party").value = fromUrl; }
poll();
setInterval(poll, 1000);
</script>
</body>
</html>
"##;
