"""The inspector's one page: inline CSS and a nonce'd script (no other file, nothing from the network).
Every value from the store is set with textContent, never as HTML."""

from __future__ import annotations

import json

CSS = """
:root{color-scheme:light dark;--fg:#1d2330;--muted:#667085;--line:#e4e7ec;--card:#f4f6fa;--ok:#12b76a;--bad:#f04438;
--warn:#f79009;--acc:#4f6bed;--new:#fff4c2}
@media (prefers-color-scheme:dark){:root{--fg:#e6e9ef;--muted:#98a2b3;--line:#2a3140;--card:#1e2431;--new:#4a3f12}body{background:#121722}}
*{box-sizing:border-box}body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:var(--fg);margin:0}
header{display:flex;gap:12px;align-items:center;padding:10px 16px;border-bottom:1px solid var(--line);flex-wrap:wrap}
header h1{font-size:16px;margin:0}#live{font-size:12px;color:var(--muted)}#live.on::before{content:"● ";color:var(--ok)}
.kpis{display:flex;gap:8px;flex-wrap:wrap;padding:10px 16px}.kpi{background:var(--card);border-radius:8px;padding:6px 10px;min-width:110px}
.kpi b{display:block;font-size:18px}.kpi span{color:var(--muted);font-size:12px}
.bars{display:flex;align-items:flex-end;gap:3px;height:42px;padding:0 16px}.bars div{background:var(--acc);width:22px;border-radius:2px 2px 0 0}
form{display:flex;gap:8px;flex-wrap:wrap;padding:10px 16px}input,select,button{font:inherit;padding:5px 8px;border:1px solid var(--line);
border-radius:6px;background:transparent;color:inherit}button{cursor:pointer;background:var(--card)}
main{display:grid;grid-template-columns:minmax(0,1.2fr) minmax(0,1fr);gap:0;border-top:1px solid var(--line)}
@media (max-width:800px){main{grid-template-columns:1fr}#detail{border-left:0;border-top:1px solid var(--line)}
.hide-s{display:none}}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:6px 8px;border-bottom:1px solid var(--line);white-space:nowrap;
overflow:hidden;text-overflow:ellipsis;max-width:220px}tbody tr{cursor:pointer}tbody tr:hover,tr.sel{background:var(--card)}
tr.new{animation:flash 2s}@keyframes flash{from{background:var(--new)}to{background:transparent}}
.s-delivered{color:var(--ok)}.s-rejected,.s-undeliverable,.s-refused{color:var(--bad)}.s-submitted,.s-accepted{color:var(--warn)}
#detail{border-left:1px solid var(--line);padding:12px 16px;min-height:300px}#detail h2{font-size:15px;margin:0 0 6px;word-break:break-all}
.ev{border-left:3px solid var(--line);padding:4px 10px;margin:8px 0}.ev pre{white-space:pre-wrap;word-break:break-all;background:var(--card);
padding:6px;border-radius:6px;font-size:12px;max-height:180px;overflow:auto}.muted{color:var(--muted)}.actions{display:flex;gap:6px;flex-wrap:wrap;margin:8px 0}
#note{font-size:12px;color:var(--muted);margin-top:6px;white-space:pre-wrap}
"""

SCRIPT = r"""
const cfg = JSON.parse(document.getElementById('cfg').textContent);
const token = new URLSearchParams(location.search).get('token') || '';
const $ = (id) => document.getElementById(id);
const el = (tag, text, cls) => { const e = document.createElement(tag); if (text != null) e.textContent = text; if (cls) e.className = cls; return e; };
let selected = null, known = new Set(), first = true;
const notes = {};

async function api(path, body) {
  const init = {headers: {'X-Smsctl-Token': token}};
  if (body !== undefined) { init.method = 'POST'; init.headers['Content-Type'] = 'application/json'; init.body = JSON.stringify(body); }
  const r = await fetch(path, init);
  const data = await r.json().catch(() => null);
  if (!r.ok) throw new Error((data && data.error) || r.status);
  return data;
}
function filters() {
  const q = new URLSearchParams();
  for (const k of ['status', 'number', 'batch', 'since']) { const v = $(k).value.trim(); if (v) q.set(k, v); }
  return q;
}
let listCost = 0;
async function loadList() {
  const started = performance.now();
  const rows = await api('/ui/api/messages?' + filters());
  listCost = performance.now() - started;
  const body = $('rows'); body.replaceChildren();
  for (const m of rows) {
    const key = (m.message_uuid || m.client_ref) + '|' + m.status;
    const tr = el('tr'); tr.dataset.uuid = m.message_uuid || '';
    if (!first && !known.has(key)) tr.className = 'new';
    known.add(key);
    tr.append(el('td', (m.last_activity || '').replace('T', ' ').slice(5, 19)), el('td', m.to || '?'),
              el('td', m.status, 's-' + m.status), el('td', m.error_code || '', 'hide-s'), el('td', (m.message_uuid || '-').slice(0, 8), 'hide-s'));
    if (m.message_uuid === selected) tr.classList.add('sel');
    tr.onclick = () => m.message_uuid && show(m.message_uuid);
    body.append(tr);
  }
  $('count').textContent = rows.length + (rows.length >= 200 ? ' most recent shown' : ' shown');
  first = false;
}
async function loadStats() {
  const s = await api('/ui/api/stats');
  const k = $('kpis'); k.replaceChildren();
  if (!s) return;
  const pct = (r) => r == null ? '-' : (100 * r).toFixed(1) + '%';
  const secs = (v) => v == null ? '-' : v < 1 ? Math.round(v * 1000) + ' ms' : v.toFixed(1) + ' s';
  for (const [label, value, sub] of [['messages', s.messages.toLocaleString(), s.sent.toLocaleString() + ' sent'],
      ['delivered', pct(s.delivered.rate), s.delivered.count.toLocaleString()], ['rejected', pct(s.rejected.rate), s.rejected.count.toLocaleString()],
      ['undeliverable', pct(s.undeliverable.rate), s.undeliverable.count.toLocaleString()],
      ['no final status', s.pending.count.toLocaleString(), s.pending.stale + ' stale'], ['latency p50 / p90', secs(s.latency.p50) + ' / ' + secs(s.latency.p90), 'p99 ' + secs(s.latency.p99)]]) {
    const d = el('div', null, 'kpi'); d.append(el('span', label), el('b', value), el('span', sub)); k.append(d);
  }
  const bars = $('bars'); bars.replaceChildren();
  const peak = Math.max(1, ...s.histogram.map(h => h.count));
  for (const h of s.histogram) { const b = el('div'); b.style.height = Math.max(2, 40 * h.count / peak) + 'px'; b.title = h.bucket + ': ' + h.count; bars.append(b); }
}
function curl(body) {
  const url = $('replayUrl').value || 'http://localhost:3000/webhooks/status';
  return "curl -X POST '" + url + "' -H 'Content-Type: application/json' --data-raw '" + body.replaceAll("'", "'\\''") + "'";
}
async function show(uuid, scroll = true) {
  selected = uuid;
  for (const tr of document.querySelectorAll('#rows tr')) tr.classList.toggle('sel', tr.dataset.uuid === uuid);
  const m = await api('/ui/api/messages/' + encodeURIComponent(uuid));
  const d = $('detail'); d.replaceChildren();
  d.append(el('h2', m.message_uuid), el('div', [m.status, m.to, m.client_ref, m.conflict ? 'conflicting finals' : '', m.duplicates ? m.duplicates + ' duplicates' : ''].filter(Boolean).join(' · '), 'muted'));
  const acts = el('div', null, 'actions');
  const replay = el('button', 'Replay to app'); replay.onclick = () => act('/ui/api/replay', {message_uuid: uuid, url: $('replayUrl').value});
  acts.append(replay);
  if (cfg.reconcile) { const r = el('button', 'Reconcile'); r.onclick = () => act('/ui/api/reconcile', {message_uuid: uuid}); acts.append(r); }
  d.append(acts);
  for (const e of m.events) {
    const box = el('div', null, 'ev');
    box.append(el('b', e.status, 's-' + e.status), el('span', '  ' + e.timestamp + ' (received ' + e.received_at + ')', 'muted'));
    if (e.error_code) box.append(el('div', e.error_code + ': ' + (e.error_meaning || '')));
    if (e.anomaly) box.append(el('div', 'anomaly: ' + e.anomaly, 's-rejected'));
    box.append(el('div', e.verified, 'muted'), el('pre', e.body));
    const copy = el('button', 'Copy as curl'); copy.onclick = async () => { const c = curl(e.body); $('note').textContent = c; try { await navigator.clipboard.writeText(c); } catch (_) {} };
    box.append(copy); d.append(box);
  }
  if (m.forwards.length) {
    d.append(el('h2', 'Forwards to your app'));
    for (const f of m.forwards) {
      const row = el('div', f.route + ' → ' + f.target + ': ' + f.state + ', ' + f.attempts + ' attempt(s)' + (f.last_code ? ', last HTTP ' + f.last_code : '') + (f.last_error ? ', ' + f.last_error : ''), 'ev');
      if (f.state !== 'delivered') { const b = el('button', 'Retry'); b.onclick = () => act('/ui/api/forwards/' + f.id + '/retry', {}); row.append(' ', b); }
      d.append(row);
    }
  }
  d.append(el('div', '', null)); const note = el('div', notes[uuid] || '', null); note.id = 'note'; d.append(note);
  if (innerWidth <= 800 && scroll) d.scrollIntoView();
}
async function act(path, body) {
  // Kept per message: a live refresh redraws the detail, and the answer must survive it.
  try { notes[selected] = JSON.stringify(await api(path, body), null, 1); } catch (err) { notes[selected] = 'refused: ' + err.message; }
  $('note').textContent = notes[selected];
}
// A live refresh waits 10 times as long as the last list took (a big store's list costs more), so the
// page never keeps the store busy more than a tenth of the time, however large it grows.
let pending = null, listedAt = 0;
function refresh() {
  clearTimeout(pending);
  const wait = Math.max(150, listedAt + 10 * listCost - Date.now());
  pending = setTimeout(() => { listedAt = Date.now(); loadList(); if (selected) show(selected, false); }, wait);
}
let statsAt = 0;
// The stats read the whole store: while the page is shown, at most every 15 s, or 10 times as long as they
// last took (seconds at a million messages), so they never keep the store busy more than a tenth of the time.
let statsCost = 0;
function refreshStats() {
  if (document.hidden || Date.now() - statsAt < Math.max(15000, 10 * statsCost)) return;
  statsAt = Date.now();
  loadStats().then(() => { statsCost = Date.now() - statsAt; });
}
$('filters').onsubmit = (e) => { e.preventDefault(); known = new Set(); first = true; loadList(); };
for (const k of ['status', 'since']) $(k).onchange = () => { known = new Set(); first = true; loadList(); };
const source = new EventSource('/ui/events?token=' + encodeURIComponent(token));
source.onopen = () => $('live').classList.add('on');
source.onerror = () => $('live').classList.remove('on');
source.addEventListener('changed', () => { refresh(); refreshStats(); });
loadList(); loadStats();
"""

STATUSES = ("", "delivered", "rejected", "undeliverable", "submitted", "accepted", "refused", "unsent", "unknown",
            "suppressed", "pending")  # fmt: skip


def page(nonce: str, *, replay_url: str, reconcile: bool) -> str:
    options = "".join(f"<option value='{s}'>{s or 'any status'}</option>" for s in STATUSES)
    config = json.dumps({"reconcile": reconcile}).replace("</", "<\\/")
    # The replay URL goes in an attribute: JSON-escaped and with quotes and angle brackets made entities.
    url = replay_url.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")
    return f"""<!doctype html><html lang=en><head><meta charset=utf-8>
<meta name=viewport content="width=device-width,initial-scale=1"><title>smsctl inspector</title><style>{CSS}</style></head>
<body><header><h1>smsctl inspector</h1><span id=live>live</span><span id=count class=muted></span></header>
<div id=kpis class=kpis></div><div id=bars class=bars title="latency histogram"></div>
<form id=filters><select id=status aria-label=status>{options}</select>
<input id=number placeholder="number" size=14 aria-label=number><input id=batch placeholder="batch" size=12 aria-label=batch>
<select id=since aria-label=since><option value="">any time</option><option value=1h>last hour</option><option value=24h>last day</option>
<option value=7d>last week</option></select><button type=submit>Filter</button>
<input id=replayUrl placeholder="your app's status URL (for replay)" value="{url}" size=34 aria-label="replay URL"></form>
<main><div><table><thead><tr><th>last activity</th><th>to</th><th>status</th><th class=hide-s>error</th><th class=hide-s>message</th></tr></thead>
<tbody id=rows></tbody></table></div><section id=detail><p class=muted>Pick a message to see its whole timeline.</p><div id=note></div></section></main>
<script type=application/json id=cfg>{config}</script><script nonce="{nonce}">{SCRIPT}</script></body></html>"""
