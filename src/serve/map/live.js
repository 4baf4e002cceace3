// The live map's data: the token, the API, polling positions and health,
// the subscription stream, the player panel, interaction, and start.

class Unauthorized extends Error {}

async function api(path) {
  const headers = S.token ? { Authorization: "Bearer " + S.token } : {};
  const r = await fetch(path, { headers, cache: "no-store" });
  if (r.status === 401) throw new Unauthorized(path);
  if (!r.ok) throw new Error(path + ": HTTP " + r.status);
  return r.json();
}

// ---- the token ----------------------------------------------------------
function askToken(message) {
  $("login-error").textContent = message || "";
  $("login-wrap").hidden = false;
  $("token").focus();
}

$("login").addEventListener("submit", (e) => {
  e.preventDefault();
  S.token = $("token").value.trim();
  sessionStorage.setItem("huntflow-token", S.token);
  $("login-wrap").hidden = true;
  start();
});

// ---- live data ----------------------------------------------------------
// Every page of the players changed since the last round's first as_of
// (a later page may describe a later time: the next round asks again
// from the first page's time, so nothing falls between rounds).
async function pollPositions() {
  if (S.polling) return;
  S.polling = true;
  try {
    let after = null, first;
    do {
      const q = new URLSearchParams({ limit: PAGE });
      if (S.since !== null) q.set("since", S.since);
      if (after !== null) q.set("after", after);
      const p = await api("/v1/positions?" + q);
      if (first === undefined) first = p.as_of;
      for (const [id, lat, lon, ts] of p.positions) S.players.set(id, [lat, lon, ts]);
      for (const id of p.removed) S.players.delete(id);
      after = p.next;
    } while (after !== null);
    if (first !== null) S.since = first;
    // Back after a failed round: the badge says the stream's state again.
    if (S.source && S.source.readyState === EventSource.OPEN) connection("live", "live");
    S.dirty.dots = true;
  } finally {
    S.polling = false;
  }
}

async function pollHealth() {
  const r = await fetch("/healthz", { cache: "no-store" });
  if (!r.ok) return;
  const h = await r.json();
  const now = performance.now();
  if (S.health) {
    const rate = (h.records_read - S.health.read) / ((now - S.health.at) / 1000);
    $("rate").textContent = `${Math.max(0, Math.round(rate)).toLocaleString("en")} records/s`;
  }
  S.health = { read: h.records_read, at: now };
  $("lag").textContent = h.event_time_lag_ms === null ? "–"
    : `${h.event_time_lag_ms.toLocaleString("en")} ms` + (h.complete ? " (input ended)" : "");
  setAsOf(h.as_of);
}

function connection(text, cls) {
  const c = $("conn");
  c.textContent = text;
  c.className = "conn " + cls;
}

function onNotification(e) {
  S.lastEventId = e.lastEventId;
  const n = JSON.parse(e.data);
  if (n.kind === "occupancy") {
    const z = S.zones.find((z) => z.id === n.zone);
    if (z) { z.count = n.count; S.dirty.zones = S.dirty.map = true; }
  }
  S.feed.push(n);
  const feed = $("feed").dataset;
  feed.latest = n.time;
  feed.received = +(feed.received || 0) + 1;
  if (S.feed.length > 2 * FEED_KEEP) S.feed.splice(0, S.feed.length - FEED_KEEP);
  S.dirty.feed = true;
}

// The stream from after the last event seen; the browser reconnects by
// itself with Last-Event-ID, and a stream that ended is opened again
// from the same place.
function subscribe() {
  const q = new URLSearchParams();
  if (S.token) q.set("access_token", S.token);
  if (S.lastEventId) q.set("last_event_id", S.lastEventId);
  if (S.source) S.source.close();
  const es = new EventSource("/v1/subscribe?" + q);
  S.source = es;
  es.onopen = () => connection("live", "live");
  es.addEventListener("notification", onNotification);
  es.addEventListener("progress", (e) => {
    S.lastEventId = e.lastEventId;
    const t = JSON.parse(e.data).time;
    if (t > 0) setAsOf(t - 1);
  });
  es.addEventListener("error", (e) => {
    if (e.data) {
      // The events after our place are no longer kept: start afresh.
      es.close();
      resync();
      return;
    }
    connection(es.readyState === EventSource.CLOSED ? "disconnected" : "reconnecting", "down");
    if (es.readyState === EventSource.CLOSED) {
      setTimeout(() => { if (S.source === es) subscribe(); }, 1000);
    }
  });
}

async function loadZones() {
  const z = await api("/v1/zones");
  for (const { zone, occupancy } of z.zones) {
    const found = S.zones.find((x) => x.id === zone);
    if (found) found.count = occupancy;
  }
  S.dirty.zones = S.dirty.map = true;
  return z.as_of;
}

async function resync() {
  S.since = null;
  S.players.clear();
  const asOf = await loadZones();
  S.lastEventId = asOf === null ? null : `${asOf}-0`;
  // What the feed counts from (for scripts checking that nothing is missed).
  $("feed").dataset.from = S.lastEventId || "";
  $("feed").dataset.received = 0;
  subscribe();
  await pollPositions();
}

// ---- the player panel ---------------------------------------------------
function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

async function showPlayer(id) {
  S.selected = id;
  S.dirty.dots = true;
  $("player-panel").hidden = false;
  $("player-title").textContent = id;
  const body = $("player-body");
  body.replaceChildren(el("p", "loading…"));
  const enc = encodeURIComponent(id);
  const p = await api(`/v1/players/${enc}`);
  const whys = await Promise.all(S.rewards.map((r) =>
    api(`/v1/players/${enc}/why/${encodeURIComponent(r.id)}`)));
  if (S.selected !== id) return;
  const parts = [el("p", `as of ${p.as_of}` + (p.position
    ? ` · at ${p.position.lat.toFixed(5)}, ${p.position.lon.toFixed(5)} (ts ${p.position.ts})` : " · no position"))];
  parts.push(el("h3", "Zones"), el("p", p.zones.length ? p.zones.join(", ") : "none"));
  parts.push(el("h3", "Eligible for"), el("p", p.eligible.length ? p.eligible.join(", ") : "nothing"));
  parts.push(el("h3", "Why, reward by reward"));
  for (const w of whys) {
    const d = el("div");
    d.append(el("strong", `${w.reward}: ${w.eligible ? "eligible" : "not eligible"}`,
      w.eligible ? "holds" : "fails"));
    const ul = el("ul");
    for (const c of w.conditions) {
      const what = c.condition === "zone" ? `in zone ${c.zone}`
        : c.condition === "clue" ? `solved ${c.clue}`
        : c.condition === "sensor" ? `${c.sensor} in [${c.min ?? "-∞"}, ${c.max ?? "∞"}]`
          + (c.reading ? ` (reads ${c.reading.value})` : " (no reading)")
        : c.condition === "window" ? `time in [${c.from ?? 0}, ${c.until ?? "∞"})`
        : "not claimed yet";
      ul.append(el("li", `${c.holds ? "✓" : "✗"} ${what}`, c.holds ? "holds" : "fails"));
    }
    d.append(ul);
    parts.push(d);
  }
  body.replaceChildren(...parts);
}

$("player-close").addEventListener("click", () => {
  $("player-panel").hidden = true;
  S.selected = null;
  S.dirty.dots = true;
});

// ---- interaction --------------------------------------------------------
const canvas = $("map");
let drag = null;
canvas.addEventListener("mousedown", (e) => { drag = { x: e.clientX, y: e.clientY, moved: false }; });
window.addEventListener("mousemove", (e) => {
  if (!drag || !S.view) return;
  const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
  if (Math.abs(dx) + Math.abs(dy) > 2) drag.moved = true;
  S.view.ox += dx; S.view.oy += dy;
  drag.x = e.clientX; drag.y = e.clientY;
  S.dirty.map = S.dirty.dots = true;
});
window.addEventListener("mouseup", (e) => {
  const wasClick = drag && !drag.moved;
  drag = null;
  if (!wasClick || e.target !== canvas || !S.view) return;
  const r = canvas.getBoundingClientRect();
  const mx = e.clientX - r.left, my = e.clientY - r.top;
  let best = null, bestD = 64;
  for (const [id, [lat, lon]] of S.players) {
    const [x, y] = project(lat, lon);
    const d = (x - mx) ** 2 + (y - my) ** 2;
    if (d < bestD) { best = id; bestD = d; }
  }
  if (best !== null) showPlayer(best).catch(failed);
});
canvas.addEventListener("wheel", (e) => {
  if (!S.view) return;
  e.preventDefault();
  const r = canvas.getBoundingClientRect();
  const mx = e.clientX - r.left, my = e.clientY - r.top;
  const k = Math.exp(-e.deltaY * 0.0015);
  S.view.ox = mx + (S.view.ox - mx) * k;
  S.view.oy = my + (S.view.oy - my) * k;
  S.view.scale *= k;
  S.dirty.map = S.dirty.dots = true;
}, { passive: false });
window.addEventListener("resize", () => { fitView(); });
$("kinds").addEventListener("change", (e) => {
  if (e.target.checked) S.kinds.add(e.target.value); else S.kinds.delete(e.target.value);
  S.dirty.feed = true;
});

function failed(e) {
  if (e instanceof Unauthorized) {
    if (S.source) { S.source.close(); S.source = null; }
    S.started = false;
    askToken(S.token ? "That token was not accepted." : "");
  } else {
    connection("error: " + e.message, "down");
  }
}

// ---- start --------------------------------------------------------------
// The hunt version in effect (zones, rewards) and the changes pending;
// zones kept by a new version keep their counts until the next answer.
function setHunt(h) {
  $("hunt-name").textContent = `huntflow · ${h.hunt.name}`;
  $("hunt-name").dataset.effective = h.effective;
  document.title = `huntflow: ${h.hunt.name}`;
  const counts = new Map(S.zones.map((z) => [z.id, z.count]));
  S.zones = h.hunt.zones.map((z) => ({ ...z, count: counts.get(z.id) ?? 0 }));
  placeLabels();
  S.rewards = h.hunt.rewards;
  S.pending = h.pending;
  S.huntDue = false;
  S.dirty.zones = S.dirty.map = true;
}

// Once a pending change is in effect, the hunt and the occupancy again.
async function reloadHunt() {
  if (!S.huntDue || S.reloading) return;
  S.reloading = true;
  try {
    setHunt(await api("/v1/hunt"));
    await loadZones();
  } finally {
    S.reloading = false;
  }
}

async function start() {
  if (S.started) return;
  try {
    const h = await api("/v1/hunt");
    S.started = true;
    setHunt(h);
    await resync();
    fitView();
    // Ready means drawn: not left to the next animation frame.
    drawDirty();
    document.body.dataset.ready = "1";
    if (!S.ticking) {
      S.ticking = true;
      setInterval(() => { if (S.started) pollPositions().catch(failed); }, POLL_MS);
      setInterval(() => { if (S.started) reloadHunt().catch(failed); }, 250);
      const health = () => pollHealth().catch(() => {});
      health();
      setInterval(health, POLL_MS);
    }
  } catch (e) {
    failed(e);
    if (!(e instanceof Unauthorized)) setTimeout(start, 2000);
  }
}

// Where a player's dot is on the canvas (for scripts driving the page).
window.huntflowMap = {
  dot(id) {
    const p = S.players.get(id);
    if (!p || !S.view) return null;
    const r = canvas.getBoundingClientRect();
    const [x, y] = project(p[0], p[1]);
    return [r.left + x, r.top + y];
  },
};

requestAnimationFrame(frame);
start();
