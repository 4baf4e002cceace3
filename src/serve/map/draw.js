// The live map's drawing: the projection, the zones, the dots, the
// zone list and the feed. (Joined with live.js into the page's one
// script, which wraps them in one function.)

const $ = (id) => document.getElementById(id);
const POLL_MS = 1000;
const PAGE = 10000;
const FEED_KEEP = 300;
const FEED_SHOW = 120;
const M_PER_DEG = Math.PI * 6371008.8 / 180;
const S = {
  token: sessionStorage.getItem("huntflow-token"),
  zones: [],            // {id, priority, geometry, radius_m, count, cx, cy}
  players: new Map(),   // id -> [lat, lon, ts]
  since: null,          // positions known as of this complete time
  asOf: null,
  lastEventId: null,
  source: null,
  feed: [],
  kinds: new Set(["enter", "exit", "eligible", "ineligible", "occupancy"]),
  selected: null,
  view: null,           // {lat0, lon0, cos, scale, ox, oy}
  dirty: { map: true, dots: true, zones: true, feed: true },
  started: false,
  polling: false,
  health: null,
};

// ---- projection ---------------------------------------------------------
// Equirectangular around the hunt's centre, in metres, then to pixels.
function project(lat, lon) {
  const v = S.view;
  return [v.ox + (lon - v.lon0) * v.cos * M_PER_DEG * v.scale,
          v.oy - (lat - v.lat0) * M_PER_DEG * v.scale];
}

function eachCoord(z, f) {
  const g = z.geometry;
  if (g.type === "Point") f(g.coordinates);
  else if (g.type === "Polygon") g.coordinates.forEach((r) => r.forEach(f));
  else g.coordinates.forEach((p) => p.forEach((r) => r.forEach(f)));
}

function fitView() {
  let [s, w, n, e] = [90, 180, -90, -180];
  const add = (lat, lon) => {
    s = Math.min(s, lat); n = Math.max(n, lat); w = Math.min(w, lon); e = Math.max(e, lon);
  };
  for (const z of S.zones) {
    if (z.geometry.type === "Point") {
      const [lon, lat] = z.geometry.coordinates;
      const dLat = z.radius_m / M_PER_DEG;
      const dLon = dLat / Math.max(0.01, Math.cos(lat * Math.PI / 180));
      add(lat - dLat, lon - dLon); add(lat + dLat, lon + dLon);
    } else eachCoord(z, ([lon, lat]) => add(lat, lon));
  }
  for (const [lat, lon] of S.players.values()) add(lat, lon);
  if (s > n) { s = n = 0; w = e = 0; }
  const canvas = $("map");
  const lat0 = (s + n) / 2, lon0 = (w + e) / 2;
  const cos = Math.cos(lat0 * Math.PI / 180);
  const wm = Math.max(1, (e - w) * cos * M_PER_DEG), hm = Math.max(1, (n - s) * M_PER_DEG);
  const scale = 0.92 * Math.min(canvas.clientWidth / wm, canvas.clientHeight / hm);
  S.view = { lat0, lon0, cos, scale, ox: canvas.clientWidth / 2, oy: canvas.clientHeight / 2 };
  S.dirty.map = S.dirty.dots = true;
}

// Where each zone's label goes: the centre of its bounding box.
function placeLabels() {
  for (const z of S.zones) {
    let [a, b, c, d] = [Infinity, Infinity, -Infinity, -Infinity];
    eachCoord(z, ([lon, lat]) => {
      a = Math.min(a, lat); b = Math.min(b, lon); c = Math.max(c, lat); d = Math.max(d, lon);
    });
    z.centre = [(a + c) / 2, (b + d) / 2];
  }
}

// ---- drawing ------------------------------------------------------------
function zoneColour(z, alpha) {
  const hue = (z.priority * 37 + 200) % 360;
  return `hsla(${hue}, 65%, 45%, ${alpha})`;
}

function zonePath(ctx, z) {
  ctx.beginPath();
  const g = z.geometry;
  const ring = (r) => {
    r.forEach(([lon, lat], i) => {
      const [x, y] = project(lat, lon);
      if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.closePath();
  };
  if (g.type === "Point") {
    const [x, y] = project(g.coordinates[1], g.coordinates[0]);
    ctx.arc(x, y, z.radius_m * S.view.scale, 0, 2 * Math.PI);
  } else if (g.type === "Polygon") g.coordinates.forEach(ring);
  else g.coordinates.forEach((p) => p.forEach(ring));
}

// Zones shaded by occupancy below the dots; outlines and labels above.
function drawZones(below, above) {
  const max = Math.max(1, ...S.zones.map((z) => z.count));
  for (const z of S.zones) {
    zonePath(below, z);
    below.fillStyle = zoneColour(z, 0.06 + 0.5 * z.count / max);
    below.fill("evenodd");
    zonePath(above, z);
    above.strokeStyle = zoneColour(z, 0.9);
    above.lineWidth = 1.5;
    above.stroke();
  }
  above.font = "600 12px system-ui, sans-serif";
  above.textAlign = "center";
  for (const z of S.zones) {
    const [x, y] = project(z.centre[0], z.centre[1]);
    const text = `${z.id} (${z.count})`;
    above.lineWidth = 3;
    above.strokeStyle = "rgba(255,255,255,0.85)";
    above.strokeText(text, x, y);
    above.fillStyle = "#1d2430";
    above.fillText(text, x, y);
  }
}

// Sizes a canvas to its box; returns its 2D context in CSS pixels.
function fit(canvas) {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.round(canvas.clientWidth * dpr), h = Math.round(canvas.clientHeight * dpr);
  if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, canvas.clientWidth, canvas.clientHeight);
  return ctx;
}

function drawZoneLayer() {
  const below = fit($("map")), above = fit($("labels"));
  if (S.view) drawZones(below, above);
}

// The dots, written straight into the pixels of their own canvas: a
// full redraw of 100,000 players is one pass over them.
let pixels = null;
function drawDots() {
  const canvas = $("dots");
  const ctx = fit(canvas);
  if (!S.view) return;
  const dpr = window.devicePixelRatio || 1;
  const W = canvas.width, H = canvas.height;
  if (!pixels || pixels.width !== W || pixels.height !== H) pixels = ctx.createImageData(W, H);
  const px = new Uint32Array(pixels.data.buffer);
  px.fill(0);
  // #c2410c as little-endian RGBA; lighter and smaller when crowded, so
  // that the zones show through.
  const crowded = S.players.size > 20000;
  const colour = crowded ? 0x990c41c2 : 0xff0c41c2;
  const v = S.view, k = M_PER_DEG * v.scale * dpr, kx = k * v.cos;
  const ox = v.ox * dpr, oy = v.oy * dpr;
  const r = crowded ? Math.round(0.5 * dpr) : Math.max(1, Math.round(1.5 * dpr));
  let drawn = 0;
  for (const p of S.players.values()) {
    const x = Math.round(ox + (p[1] - v.lon0) * kx), y = Math.round(oy - (p[0] - v.lat0) * k);
    if (x < 0 || y < 0 || x >= W || y >= H) continue;
    drawn++;
    for (let yy = Math.max(0, y - r); yy <= Math.min(H - 1, y + r); yy++) {
      const row = yy * W;
      for (let xx = Math.max(0, x - r); xx <= Math.min(W - 1, x + r); xx++) px[row + xx] = colour;
    }
  }
  ctx.putImageData(pixels, 0, 0);
  const sel = S.selected && S.players.get(S.selected);
  if (sel) {
    const [x, y] = project(sel[0], sel[1]);
    ctx.beginPath();
    ctx.arc(x, y, 7, 0, 2 * Math.PI);
    ctx.strokeStyle = "#1d4ed8";
    ctx.lineWidth = 2.5;
    ctx.stroke();
  }
  const count = $("player-count");
  count.dataset.count = S.players.size;
  count.dataset.drawn = drawn;
  count.textContent = `${S.players.size.toLocaleString("en")} players`
    + (drawn < S.players.size ? ` (${drawn.toLocaleString("en")} in view)` : "");
}

function renderZones() {
  const max = Math.max(1, ...S.zones.map((z) => z.count));
  const sorted = [...S.zones].sort((a, b) => b.count - a.count || (a.id < b.id ? -1 : 1));
  $("zones").replaceChildren(...sorted.map((z) => {
    const li = document.createElement("li");
    li.dataset.zone = z.id;
    li.dataset.count = z.count;
    li.style.setProperty("--shade", zoneColour(z, 0.15 + 0.85 * z.count / max));
    const id = document.createElement("span");
    id.textContent = z.id;
    const n = document.createElement("span");
    n.className = "count";
    n.textContent = z.count;
    li.append(id, n);
    return li;
  }));
}

function renderFeed() {
  const items = [];
  for (let i = S.feed.length - 1; i >= 0 && items.length < FEED_SHOW; i--) {
    const n = S.feed[i];
    if (!S.kinds.has(n.kind)) continue;
    const li = document.createElement("li");
    li.dataset.kind = n.kind;
    const k = document.createElement("span");
    k.className = "k " + n.kind;
    k.textContent = n.kind;
    const what = n.kind === "occupancy" ? `${n.zone}: ${n.count}`
      : `${n.player} ${n.zone !== undefined ? n.zone : n.reward}`;
    li.append(k, `${what} @ ${n.time}`);
    items.push(li);
  }
  $("feed").replaceChildren(...items);
}

function setAsOf(t) {
  if (t === null || t === undefined || (S.asOf !== null && t <= S.asOf)) return;
  S.asOf = t;
  $("as-of").textContent = t.toLocaleString("en") + " ms";
  $("as-of").dataset.asOf = t;
  // A pending hunt change is now in effect: draw its zones.
  if (S.pending && S.pending.some((v) => v.effective <= t)) S.huntDue = true;
}

// Draws what changed since the last drawing.
function drawDirty() {
  if (S.dirty.map) { S.dirty.map = false; drawZoneLayer(); }
  if (S.dirty.dots) { S.dirty.dots = false; drawDots(); }
  if (S.dirty.zones) { S.dirty.zones = false; renderZones(); }
  if (S.dirty.feed) { S.dirty.feed = false; renderFeed(); }
}

function frame() {
  drawDirty();
  requestAnimationFrame(frame);
}
