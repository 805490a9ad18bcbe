// The job timeline: one lane per mapper, one bar per split attempt from its start to its end, coloured by how it
// ended; backup attempts outlined, stragglers flagged. Plain SVG built with DOM calls: every value from the API is
// set as an attribute or as text, never parsed as markup. page.js calls window.mapreduceTimeline.draw.
"use strict";

(() => {
  const SVG = "http://www.w3.org/2000/svg";
  const WIDTH = 1100; // viewBox units; the SVG scales to its column
  const LABEL = 110; // the lane names' column
  const ROW = 14; // one bar's height
  const GAP = 4; // between rows and lanes
  const AXIS = 22; // the time axis, below the lanes
  const MAX_ATTEMPTS = 3000; // bars drawn at most; more are said, not drawn
  const OUTCOMES = ["ok", "running", "failed", "lease_expired", "superseded", "unreachable", "cut"];
  const NAMES = { lease_expired: "lease expired", cut: "cut (the job ended)" };

  function node(tag, attrs, ...children) {
    const element = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) element.setAttribute(key, String(value));
    for (const child of children) element.append(child);
    return element;
  }

  function html(tag, className, text) {
    const element = document.createElement(tag);
    if (className) element.className = className;
    if (text !== undefined) element.textContent = String(text);
    return element;
  }

  function seconds(value) {
    if (value < 1) return Math.round(value * 1000) + " ms";
    if (value < 60) return value.toFixed(value < 10 ? 1 : 0) + " s";
    return Math.floor(value / 60) + " min " + Math.round(value % 60) + " s";
  }

  // A step between axis ticks giving about 6 of them: 1, 2 or 5 times a power of ten seconds.
  function tickStep(span) {
    const raw = span / 6;
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    return [1, 2, 5, 10].map((m) => m * power).find((step) => step >= raw) || raw;
  }

  // Every attempt of the listed splits, with an end: its own, else the job's (it was cut) or now (it runs).
  function attemptsOf(status, items, now) {
    const jobEnd = typeof status.finished === "number" ? status.finished : now;
    const bars = [];
    for (const split of items) {
      for (const a of split.attempts || []) {
        if (typeof a.started !== "number") continue;
        const end = typeof a.ended === "number" ? a.ended : Math.max(a.started, jobEnd);
        bars.push({ split: split.split, attempt: a.attempt, mapper: String(a.mapper), outcome: String(a.outcome),
          backup: a.backup === true, straggler: a.straggler === true, start: a.started, end,
          open: typeof a.ended !== "number", bytes: a.bytes, cause: a.cause || "" });
      }
    }
    return bars;
  }

  // Per lane, rows of bars that do not overlap (a mapper runs MR_MAPPER_SLOTS attempts at once).
  function packLanes(bars, mappers) {
    const lanes = new Map(mappers.map((m) => [m, []]));
    for (const bar of bars) if (!lanes.has(bar.mapper)) lanes.set(bar.mapper, []);
    const ordered = [...bars].sort((x, y) => x.start - y.start || x.split - y.split);
    for (const bar of ordered) {
      const rows = lanes.get(bar.mapper);
      let row = rows.findIndex((lastEnd) => lastEnd <= bar.start);
      if (row < 0) {
        row = rows.length;
        rows.push(0);
      }
      rows[row] = bar.end;
      bar.row = row;
    }
    return [...lanes.entries()].sort(([a], [b]) => a.localeCompare(b, undefined, { numeric: true }))
      .map(([name, rows]) => ({ name, rows: Math.max(rows.length, 1) }));
  }

  function describe(bar, bytes) {
    const facts = ["split " + bar.split + " attempt " + bar.attempt + (bar.backup ? " (backup)" : ""),
      "on " + bar.mapper, (NAMES[bar.outcome] || bar.outcome) + (bar.open ? " (no end yet)" : ""),
      seconds(bar.end - bar.start), bytes(bar.bytes) + " read"];
    if (bar.straggler) facts.push("straggler");
    return facts.join(" · ") + (bar.cause ? "\n" + bar.cause : "");
  }

  function legend() {
    const list = html("ul", "legend timeline-legend");
    for (const outcome of OUTCOMES) {
      const item = html("li");
      item.append(html("span", "swatch outcome-" + outcome), NAMES[outcome] || outcome);
      list.append(item);
    }
    const backup = html("li");
    backup.append(html("span", "swatch swatch-backup"), "backup attempt");
    const straggler = html("li");
    straggler.append(html("span", "swatch swatch-straggler"), "straggler");
    list.append(backup, straggler);
    return list;
  }

  // ``status``: the job's status; ``listing``: a page of its splits (``?splits=all``); ``bytes``: a formatter.
  function draw(status, listing, bytes) {
    const after = listing && typeof listing.straggler_after === "number" ? listing.straggler_after : null;
    const box = html("div", "timeline");
    box.id = "timeline";
    const items = listing && Array.isArray(listing.items) ? listing.items : [];
    let bars = attemptsOf(status, items, Date.now() / 1000);
    const attemptsListed = bars.length;
    if (bars.length > MAX_ATTEMPTS) bars = bars.slice(0, MAX_ATTEMPTS);
    if (bars.length === 0) {
      box.append(html("p", "muted", "No attempt has started yet."));
      return box;
    }
    const lanes = packLanes(bars, (status.mappers || []).map(String));
    const t0 = Math.min(...bars.map((b) => b.start));
    const t1 = Math.max(...bars.map((b) => b.end), t0 + 0.001);
    const span = t1 - t0;
    const x = (t) => LABEL + ((t - t0) / span) * (WIDTH - LABEL - 8);
    const top = new Map();
    let y = 0;
    for (const lane of lanes) {
      top.set(lane.name, y);
      y += lane.rows * (ROW + GAP) + GAP;
    }
    const height = y + AXIS;
    const svg = node("svg", { viewBox: "0 0 " + WIDTH + " " + height, width: "100%", role: "img",
      "aria-label": "split attempts over time, one lane per mapper" });
    lanes.forEach((lane, i) => {
      const laneTop = top.get(lane.name);
      const laneHeight = lane.rows * (ROW + GAP) + GAP;
      svg.append(node("rect", { x: 0, y: laneTop, width: WIDTH, height: laneHeight,
        class: i % 2 ? "lane lane-odd" : "lane" }));
      const name = node("text", { x: 6, y: laneTop + laneHeight / 2 + 4, class: "lane-name" });
      name.textContent = lane.name;
      svg.append(name);
    });
    const step = tickStep(span);
    for (let t = 0; t <= span + 1e-9; t += step) {
      const at = x(t0 + t);
      svg.append(node("line", { x1: at, x2: at, y1: 0, y2: y, class: "tick" }));
      const label = node("text", { x: at, y: y + 15, class: "tick-label", "text-anchor": "middle" });
      label.textContent = seconds(t);
      svg.append(label);
    }
    for (const bar of bars) {
      const left = x(bar.start);
      const barTop = top.get(bar.mapper) + GAP + bar.row * (ROW + GAP);
      const width = Math.max(2, x(bar.end) - left);
      const rect = node("rect", { x: left, y: barTop, width, height: ROW, rx: 2,
        class: "attempt outcome-" + bar.outcome + (bar.backup ? " backup" : "") + (bar.straggler ? " straggler" : ""),
        "data-split": bar.split, "data-attempt": bar.attempt, "data-mapper": bar.mapper,
        "data-outcome": bar.outcome, "data-backup": bar.backup, "data-straggler": bar.straggler });
      const title = node("title");
      title.textContent = describe(bar, bytes);
      rect.append(title);
      svg.append(rect);
      if (width > 34) {
        const label = node("text", { x: left + 3, y: barTop + ROW - 3, class: "bar-label" });
        label.textContent = String(bar.split) + (bar.backup ? " backup" : "");
        svg.append(label);
      } else if (bar.backup) { // too narrow to hold its label: say it beside the bar
        const label = node("text", { x: left - 3, y: barTop + ROW - 3, class: "bar-note", "text-anchor": "end" });
        label.textContent = "backup of " + bar.split;
        svg.append(label);
      }
      if (bar.straggler) {
        // Where it turned straggler, when the rule is known: from there on a backup could race it.
        const tip = Math.min(x(after !== null ? Math.min(bar.start + after, bar.end) : bar.end), WIDTH - 14);
        svg.append(node("path", { d: "M" + (tip - 5) + " " + (barTop - 1) + " h10 l-5 7 z", class: "straggler-flag",
          "data-split": bar.split, "data-attempt": bar.attempt }));
      }
    }
    box.append(svg, legend());
    const notes = [];
    const matching = listing && typeof listing.matching === "number" ? listing.matching : items.length;
    if (items.length < matching) notes.push("the attempts of the first " + items.length + " of " + matching + " splits");
    if (bars.length < attemptsListed) notes.push("the first " + bars.length + " of those " + attemptsListed + " attempts");
    const rule = after !== null ? " The flag marks where an attempt turned straggler: past " + seconds(after)
      + " (MR_BACKUP_AFTER, or twice the median finished attempt if more)." : "";
    box.append(html("p", "small muted", (notes.length ? "Showing " + notes.join(", ") + ". " : "")
      + "Time from the first attempt's start (" + seconds(span) + " in all)." + rule));
    return box;
  }

  window.mapreduceTimeline = Object.freeze({ draw, MAX_ATTEMPTS });
})();
