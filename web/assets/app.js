// iterjob dashboard: live updates from the events stream (Server-Sent
// Events), progress bars, confirmations and bulk selection. No polling: a
// page re-reads part of itself only when an event says something changed.
"use strict";
(function () {
  const body = document.body;
  const root = body.dataset.root || "";
  const pageName = body.dataset.page;

  // Bars and chart columns: widths and heights come from data attributes
  // (the Content-Security-Policy allows no inline styles).
  function paintBar(bar) {
    const f = parseFloat(bar.dataset.fraction);
    const inner = bar.firstElementChild;
    if (isNaN(f) || f < 0) { bar.classList.add("unknown"); return; }
    bar.classList.remove("unknown");
    inner.style.width = Math.min(f, 1) * 100 + "%";
  }
  document.querySelectorAll(".bar").forEach(paintBar);
  document.querySelectorAll(".chart [data-h]").forEach((el) => { el.style.height = el.dataset.h + "%"; });

  // Confirmations and bulk selection.
  document.querySelectorAll("form.confirm").forEach((f) => f.addEventListener("submit", (e) => {
    if (!window.confirm(f.dataset.confirm || "Are you sure?")) e.preventDefault();
  }));
  document.querySelectorAll("input.all").forEach((all) => all.addEventListener("change", () => {
    all.closest("form").querySelectorAll('input[name="jid"]').forEach((c) => { c.checked = all.checked; });
  }));

  function notice(text) {
    const n = document.getElementById("notice");
    n.textContent = text;
    n.hidden = false;
  }

  // The rows showing a job, on any page.
  function rows(jid) {
    return Array.from(document.querySelectorAll("tr[data-jid]")).filter((r) => r.dataset.jid === jid);
  }
  function drop(jid) {
    rows(jid).forEach((r) => {
      r.classList.add("gone");
      setTimeout(() => r.remove(), 300);
    });
  }

  function setText(el, sel, v) {
    const t = el.querySelector(sel);
    if (t) t.textContent = v;
  }
  function showProgress(el, p) {
    const bar = el.querySelector(".bar");
    if (!bar) return;
    bar.dataset.fraction = p.fraction;
    paintBar(bar);
    setText(el, ".p-done", p.done);
    setText(el, ".p-total", p.total);
    setText(el, ".p-pct", p.fraction >= 0 ? (Math.min(p.fraction, 1) * 100).toFixed(1) : "");
    setText(el, ".p-rate", p.rate ? p.rate.toFixed(1) : "");
    setText(el, ".p-eta", p.eta || "–");
    setText(el, ".p-int", p.interrupted);
    setText(el, ".p-cursor", p.cursor || "");
  }

  // A part of the page is re-read at most once a second, and only when an
  // event asked for it.
  let refreshing = null;
  function refresh() {
    if (refreshing) return;
    refreshing = setTimeout(async () => {
      refreshing = null;
      try {
        const res = await fetch(window.location.href, { headers: { "Accept": "text/html" } });
        if (!res.ok) return;
        const doc = new DOMParser().parseFromString(await res.text(), "text/html");
        const fresh = doc.querySelector("main");
        if (fresh) {
          document.querySelector("main").replaceWith(fresh);
          fresh.querySelectorAll(".bar").forEach(paintBar);
          fresh.querySelectorAll(".chart [data-h]").forEach((el) => { el.style.height = el.dataset.h + "%"; });
          fresh.querySelectorAll("form.confirm").forEach((f) => f.addEventListener("submit", (e) => {
            if (!window.confirm(f.dataset.confirm || "Are you sure?")) e.preventDefault();
          }));
        }
      } catch (e) { /* the next event tries again */ }
    }, 1000);
  }

  const ends = new Set(["succeeded", "dead", "cancelled", "interrupted", "failed", "retrying", "deleted"]);
  function onEvent(ev) {
    if (ev.type === "deleted") {
      drop(ev.jid);
      return;
    }
    if (pageName === "busy") {
      const here = rows(ev.jid);
      if (ev.progress && here.length) here.forEach((r) => showProgress(r, ev.progress));
      if (ends.has(ev.type)) drop(ev.jid);
      else if (!here.length && (ev.type === "started" || ev.type === "resumed")) refresh();
      return;
    }
    if (pageName === "job") {
      const cell = document.querySelector("td.iterable");
      if (cell && cell.dataset.jid === ev.jid) {
        if (ev.progress) showProgress(cell, ev.progress);
        if (ends.has(ev.type) || ev.type === "started" || ev.type === "resumed") refresh();
      }
      return;
    }
    if (pageName === "set" || pageName === "queue") {
      // A listed job that moves leaves the list.
      if (rows(ev.jid).length && ev.type !== "checkpointed") drop(ev.jid);
      return;
    }
    if (pageName === "overview" || pageName === "queues") refresh();
  }

  if (!window.EventSource) return;
  const live = document.getElementById("live");
  // Follow events from the position taken before the page read its data,
  // so that nothing that happened in between is missed.
  const after = body.dataset.after;
  const es = new EventSource(root + "/events" + (after ? "?after=" + encodeURIComponent(after) : ""));
  es.onopen = () => live.classList.add("on");
  es.onerror = () => live.classList.remove("on");
  es.addEventListener("job", (e) => {
    try { onEvent(JSON.parse(e.data)); } catch (err) { console.warn("iterjob: bad event", err); }
  });
  es.addEventListener("reload", () => notice("Events were missed while this page was disconnected: reload it to catch up."));
})();
