// The console's live parts, without inline script (the Content-Security-Policy forbids it).
// - An element with data-live="<url>" has its content replaced every two seconds by the HTML
//   fragment the server renders at that URL (escaped there, like every page).
// - A page with a [data-events] element follows the live event stream (Server-Sent Events,
//   authenticated by the session cookie): batch progress bars and running pulls move as
//   their events arrive. Values are written with textContent and attributes, never as HTML;
//   when a pull ends, its shop's card is fetched again as HTML the server rendered.
"use strict";

const STATES = ["available", "scheduled", "running", "completed", "cancelled", "dead"];

function follow() {
  const events = new EventSource("/console/live/events");
  const each = (selector, fn) => document.querySelectorAll(selector).forEach(fn);
  const batch = (e) => {
    const b = JSON.parse(e.data);
    const c = b.counts || {};
    const done = (c.completed || 0) + (c.dead || 0) + (c.cancelled || 0);
    each(`progress[data-batch="${b.batch_id}"]`, (p) => {
      p.max = Math.max(b.total, 1);
      p.value = done;
    });
    each(`[data-batch-done="${b.batch_id}"]`, (el) => { el.textContent = `${done}/${b.total}`; });
    const parts = STATES.filter((s) => c[s] > 0).map((s) => `${c[s]} ${s}`);
    each(`[data-batch-counts="${b.batch_id}"]`, (el) => { el.textContent = parts.join(" · ") || "no job yet"; });
    if (e.type === "batch.finished") ended(b.batch_id, "finished");
  };
  // An ended batch has nothing left to cancel; a cancelled one stays "cancelled" when its
  // last jobs settle.
  const ended = (id, how) => {
    each(`[data-batch-status="${id}"]`, (el) => {
      if (el.textContent !== "cancelled") el.textContent = how;
    });
    each(`tr[data-batch-row="${id}"] form`, (f) => f.remove());
  };
  events.addEventListener("batch.progress", batch);
  events.addEventListener("batch.finished", batch);
  events.addEventListener("batch.cancelled", (e) => ended(JSON.parse(e.data).batch_id, "cancelled"));
  events.addEventListener("sync.progress", (e) => {
    const s = JSON.parse(e.data);
    each(`[data-pull="${s.pull_id}"]`, (el) => {
      el.textContent = `${s.kind}, ${s.stage}: ${s.products} products, ${s.variants} variants so far`;
    });
  });
  // A pull ended: the shop's whole card (catalog size, pulls, controls) is rendered again.
  events.addEventListener("sync.finished", async (e) => {
    const s = JSON.parse(e.data);
    const card = document.querySelector(`section.shop[data-shop="${s.shop_id}"]`);
    if (!card) return;
    try {
      const res = await fetch(`/console/live/shops/${s.shop_id}`, { credentials: "same-origin" });
      if (res.ok && !res.redirected) card.outerHTML = await res.text();
    } catch (_) {
      // offline for a moment: the next pull's end, or a reload, shows it
    }
  });
}

// Sparklines of each queue's throughput and oldest wait, from the rows' data-done and
// data-wait as the table refreshes (kept for the last three minutes the page was open).
const trends = new Map();
const SVG = "http://www.w3.org/2000/svg";

function spark(values, cls, label) {
  const w = 90, h = 18, max = Math.max(1, ...values);
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("width", w);
  svg.setAttribute("height", h);
  svg.setAttribute("class", `spark ${cls}`);
  const step = values.length > 1 ? w / (values.length - 1) : 0;
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("points", values.map((v, i) =>
    `${(i * step).toFixed(1)},${(h - 1 - (v / max) * (h - 2)).toFixed(1)}`).join(" "));
  const title = document.createElementNS(SVG, "title");
  title.textContent = `${label}: ${values[values.length - 1]} (max ${max})`;
  svg.append(title, line);
  return svg;
}

function sparks(root) {
  for (const tr of root.querySelectorAll("tr[data-queue]")) {
    const q = tr.getAttribute("data-queue");
    const seen = trends.get(q) || [];
    seen.push([Number(tr.getAttribute("data-done")), Number(tr.getAttribute("data-wait"))]);
    if (seen.length > 90) seen.shift();
    trends.set(q, seen);
    const cell = tr.querySelector("td.spark");
    if (cell) {
      cell.replaceChildren(spark(seen.map((p) => p[0]), "done", "done/min"),
        spark(seen.map((p) => p[1]), "wait", "oldest wait (s)"));
    }
  }
}

document.addEventListener("DOMContentLoaded", () => {
  for (const table of document.querySelectorAll("table.queues")) {
    sparks(table);
    table.addEventListener("live-updated", () => sparks(table));
  }
  // A header checkbox selects every checkbox of its table.
  for (const all of document.querySelectorAll("input[data-select-all]")) {
    all.addEventListener("change", () => {
      const table = all.closest("table");
      for (const box of table.querySelectorAll("tbody input[type=checkbox]")) box.checked = all.checked;
    });
  }
  for (const el of document.querySelectorAll("[data-live]")) {
    const url = el.getAttribute("data-live");
    const refresh = async () => {
      try {
        const res = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
        if (res.redirected || !res.ok) return; // signed out or failing: keep what is shown
        el.innerHTML = await res.text();
        el.dispatchEvent(new CustomEvent("live-updated", { bubbles: true }));
      } catch (_) {
        // offline for a moment: try again on the next tick
      }
    };
    setInterval(refresh, 2000);
  }
  if (document.querySelector("[data-events]")) follow();
});
