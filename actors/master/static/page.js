// The status page: polls the master's JSON API and draws the cluster, the jobs and one job's detail.
// Every value from the API goes into the DOM as text (textContent), never as markup: job and input names and
// errors are user-controlled. The API token lives in sessionStorage and travels only in the Authorization header.
"use strict";

(() => {
  const POLL_MS = 2000; // jobs and the selected job
  const CLUSTER_MS = 10000; // the cluster view probes every actor: less often
  const RECENT = 25; // jobs listed
  const TOP_N = 20; // words shown for a finished job
  const TIMELINE_SPLITS = 1000; // splits the timeline fetches (the status's largest page)
  const FAILED_SPLITS = 200; // failed splits listed with their causes
  const TOKEN_KEY = "mapreduce-api-token";
  const FINISHED = new Set(["done", "failed", "cancelled"]);

  const $ = (id) => document.getElementById(id);
  const statuses = new Map(); // job id -> last status; a finished job's status is final and never fetched again
  const tops = new Map(); // job id -> {top} or {error}: fetched once, when the job is done
  const listings = new Map(); // job id -> {all, failed}: pages of its splits, final once the job is
  let selected = null;
  let clusterAt = 0;
  let timer = null;
  let waitingForToken = false;

  class NeedToken extends Error {}

  // ------------------------------------------------------------------ the API

  async function api(path) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = "Bearer " + token;
    const response = await fetch(path, { headers, cache: "no-store", credentials: "omit" });
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    if (response.status === 401) throw new NeedToken(body && body.message ? body.message : "unauthorized");
    if (!response.ok) {
      const message = body && body.message ? body.message : "HTTP " + response.status;
      const error = new Error(message);
      error.status = response.status;
      throw error;
    }
    return body;
  }

  const jobPath = (id) => "v1/jobs/" + encodeURIComponent(id);

  // ------------------------------------------------------------------ DOM helpers (text only)

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    if (props) {
      for (const [key, value] of Object.entries(props)) {
        if (value === undefined || value === null) continue;
        if (key === "text") node.textContent = String(value);
        else if (key === "className") node.className = value;
        else if (key === "title") node.title = String(value);
        else if (key === "dataset") Object.assign(node.dataset, value);
        else if (key === "style") Object.assign(node.style, value);
        else if (key === "onclick") node.addEventListener("click", value);
        else node.setAttribute(key, String(value));
      }
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function bytes(n) {
    if (typeof n !== "number" || !isFinite(n)) return "?";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i += 1;
    }
    return (i === 0 ? String(n) : n.toFixed(n < 10 ? 1 : 0)) + " " + units[i];
  }

  function duration(seconds) {
    if (typeof seconds !== "number" || !isFinite(seconds) || seconds < 0) return "–";
    if (seconds < 1) return Math.round(seconds * 1000) + " ms";
    if (seconds < 60) return seconds.toFixed(seconds < 10 ? 1 : 0) + " s";
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + " min " + Math.round(seconds % 60) + " s";
    return Math.floor(minutes / 60) + " h " + (minutes % 60) + " min";
  }

  const clock = (epoch) => (typeof epoch === "number" ? new Date(epoch * 1000).toLocaleTimeString() : "–");
  const jobDuration = (s) => (s.finished || Date.now() / 1000) - s.created;
  const badge = (state) => el("span", { className: "badge state-" + state, text: state });

  function bar(done, total, label) {
    const fraction = total > 0 ? Math.min(1, done / total) : 0;
    return el("div", { className: "bar", title: label },
      el("div", { className: "fill", style: { width: (fraction * 100).toFixed(1) + "%" } }));
  }

  function clip(text, limit) {
    const value = String(text);
    return value.length > limit ? value.slice(0, limit - 1) + "…" : value;
  }

  // ------------------------------------------------------------------ the cluster

  // How many times the local launcher restarted an actor (mapreduce run / local); nothing when never or unknown.
  function restarted(actor) {
    const n = actor.restarts;
    if (typeof n !== "number" || n < 1) return null;
    return el("span", { className: "restarts", text: " restarted " + (n === 1 ? "once" : n + " times"),
      title: "its process exited and was started again" });
  }

  function drawCluster(view) {
    $("version").textContent = "v" + view.version;
    const byRole = { master: [], mapper: [], reducer: [] };
    for (const actor of view.actors) (byRole[actor.role] || (byRole[actor.role] = [])).push(actor);
    const groups = Object.entries(byRole).map(([role, actors]) => {
      const ready = actors.filter((a) => a.ready).length;
      return el("div", { className: "role" },
        el("h3", null, role[0].toUpperCase() + role.slice(1) + "s ", el("span", { className: "muted", text: ready + "/" + actors.length + " ready" })),
        actors.length === 0 ? el("p", { className: "muted", text: "none visible" }) : el("ul", null,
          ...actors.map((a) => el("li", { className: a.ready ? "ready" : "not-ready", title: a.url + " · " + a.status },
            el("span", { className: "dot" }), a.name,
            el("span", { className: "muted", text: " " + (a.ready ? (a.version ? "v" + a.version : "") : a.status) }),
            restarted(a)))));
    });
    $("cluster").replaceChildren(...groups);
  }

  // ------------------------------------------------------------------ the jobs

  function progressCell(s) {
    const p = s.progress;
    return el("td", { className: "progress" },
      bar(p.splits_done, p.splits_total, "splits"),
      bar(p.bytes_done, p.bytes_total, "bytes"),
      el("div", { className: "small muted",
        text: p.splits_done + "/" + p.splits_total + " splits · " + bytes(p.bytes_done) + " / " + bytes(p.bytes_total) }),
      ...stepLines(s));
  }

  // A multi-step job: which step runs, and each step's splits and where its time went.
  function stepLines(s) {
    const steps = s.steps || [];
    if (steps.length < 2) return [];
    const ms = (v) => (v === null || v === undefined ? "–" : duration(v / 1000));
    return [el("div", { className: "small", text: "step " + (s.step + 1) + " of " + steps.length })].concat(
      steps.map((t) => el("div", { className: "small muted",
        text: "step " + (t.step + 1) + ": " + t.state + " · " + t.splits_done + "/" + t.splits_total + " splits · map " +
          ms(t.map_ms) + " · finalize " + ms(t.finalize_ms) })));
  }

  function drawJobs(list) {
    const rows = list.map((s) => {
      const a = s.attempts;
      const row = el("tr", { dataset: { jobId: s.id }, className: s.id === selected ? "selected" : "",
        onclick: () => select(s.id) },
        el("td", null, el("div", { className: "mono", text: s.id }),
          el("div", { className: "small muted", text: s.job + " · " + clip(s.input.name, 60) })),
        el("td", null, badge(s.state)),
        progressCell(s),
        el("td", { text: duration(jobDuration(s)) }),
        el("td", { text: a.started + (a.retries ? " (" + a.retries + " retried)" : "") }),
        el("td", { className: "error", text: s.error ? clip(s.error, 160) : "" }));
      return row;
    });
    $("jobs").tBodies[0].replaceChildren(...rows);
    $("no-jobs").hidden = rows.length > 0;
  }

  async function loadJobs() {
    const listed = (await api("v1/jobs")).jobs;
    listed.sort((a, b) => b.created - a.created);
    const recent = listed.slice(0, RECENT);
    await Promise.all(recent.map(async (job) => {
      const known = statuses.get(job.id);
      if (known && FINISHED.has(known.state)) return; // final: stop polling it
      try {
        statuses.set(job.id, await api(jobPath(job.id)));
      } catch (error) {
        if (error instanceof NeedToken) throw error;
        if (error.status !== 404) throw error; // 404: expired between the list and now
      }
    }));
    const keep = new Set(recent.map((j) => j.id));
    for (const id of statuses.keys()) if (!keep.has(id) && id !== selected) statuses.delete(id);
    for (const id of tops.keys()) if (!statuses.has(id)) tops.delete(id);
    for (const id of listings.keys()) if (!statuses.has(id)) listings.delete(id);
    drawJobs(recent.map((j) => statuses.get(j.id)).filter(Boolean));
  }

  // ------------------------------------------------------------------ one job

  function select(id) {
    selected = id;
    history.replaceState(null, "", id ? "#job=" + encodeURIComponent(id) : location.pathname);
    for (const row of $("jobs").tBodies[0].rows) row.classList.toggle("selected", row.dataset.jobId === id);
    $("detail-section").hidden = !id;
    if (id) {
      $("detail-id").textContent = id;
      $("detail").replaceChildren(el("p", { className: "muted", text: "Loading…" }));
      schedule(0);
    }
  }

  function facts(pairs) {
    return el("dl", { className: "facts" },
      ...pairs.flatMap(([name, value]) => [el("dt", { text: name }), el("dd", null, value)]));
  }

  function splitCounts(counts) {
    const order = ["done", "running", "pending"]; // left to right, as the work goes
    const total = counts.total || 0;
    const stacked = el("div", { className: "stack", title: "splits by state" },
      ...order.map((k) => el("div", { className: "seg seg-" + k,
        style: { width: total ? ((counts[k] / total) * 100).toFixed(1) + "%" : "0" } })));
    const legend = el("ul", { className: "legend", id: "split-counts" },
      ...[...order, "failed"].map((k) => el("li", { className: "key-" + k, dataset: { state: k } },
        el("span", { className: "swatch seg-" + k }), k + " ", el("strong", { text: counts[k] || 0 }))),
      el("li", null, "total ", el("strong", { text: total })));
    return el("div", null, stacked, legend);
  }

  const OUTCOME_NAMES = { lease_expired: "lease expired" };

  function splitList(title, splits, id, total) {
    if (!splits || splits.length === 0) return null;
    const more = typeof total === "number" && total > splits.length
      ? el("p", { className: "small muted", text: "… and " + (total - splits.length) + " more (the status's ?splits=failed lists every one)" })
      : null;
    return el("div", { id }, el("h4", { text: title }), el("ul", { className: "splits" },
      ...splits.map((s) => el("li", { dataset: { split: s.split } }, el("strong", { text: "split " + s.split }),
        el("span", { className: "muted", text: " bytes " + s.start + "–" + s.end }),
        el("ul", null, ...s.attempts.map((a) => el("li", null,
          "attempt " + a.attempt + " on " + a.mapper + ": " + (OUTCOME_NAMES[a.outcome] || a.outcome || a.state)
            + (a.backup ? " (backup)" : "") + (typeof a.seconds === "number" ? ", " + duration(a.seconds) : ""),
          a.cause ? el("span", { className: "error cause", text: " — " + clip(a.cause, 300) }) : null)))))),
      more);
  }

  function partitionTable(partitions) {
    if (!partitions || partitions.length === 0) return el("p", { className: "muted", text: "Not planned yet." });
    return el("table", { className: "compact", id: "partitions" },
      el("thead", null, el("tr", null, ...["Partition", "Reducer", "State", "Re-mapped"].map((h) => el("th", { text: h })))),
      el("tbody", null, ...partitions.map((p) => el("tr", null,
        el("td", { text: p.partition }), el("td", { text: p.reducer || "–" }), el("td", null, badge(p.state)),
        el("td", { text: p.recoveries ? p.recoveries + "×" : "–" })))));
  }

  // The job's counters, summed over the attempts the master counted: one row per group and name.
  function counterTable(counters) {
    const rows = [];
    for (const group of Object.keys(counters || {}).sort()) {
      for (const name of Object.keys(counters[group]).sort()) rows.push([group, name, counters[group][name]]);
    }
    if (rows.length === 0) return el("p", { className: "muted", text: "No counters." });
    return el("table", { className: "compact", id: "counters" },
      el("thead", null, el("tr", null, ...["Group", "Name", "Value"].map((h) => el("th", { text: h })))),
      el("tbody", null, ...rows.map(([group, name, value]) => el("tr", null,
        el("td", { text: clip(group, 80) }), el("td", { text: clip(name, 80) }),
        el("td", { className: "num", text: String(value) })))));
  }

  // Records skipped under max_bad_records: how many, and the first ones with their input, offset and error.
  function badRecords(bad) {
    if (!bad || (!bad.count && !bad.allowed)) return el("p", { className: "muted", text: "None allowed (max_bad_records 0)." });
    const first = bad.first || [];
    return el("div", { id: "bad-records" },
      el("p", { text: bad.count + " skipped of at most " + bad.allowed }),
      first.length ? el("ul", null, ...first.slice(0, 20).map((r) => el("li", null,
        el("span", { className: "mono", text: clip(r.input, 80) + " @" + r.offset }),
        el("span", { className: "error cause", text: " — " + clip(r.error, 200) })))) : null);
  }

  function topTable(s) {
    if (s.state !== "done") return el("p", { className: "muted", text: "Shown once the job is done." });
    const top = tops.get(s.id);
    if (!top) return el("p", { className: "muted", text: "Loading…" });
    if (top.error) return el("p", { className: "error", text: top.error });
    if (top.top.length === 0) return el("p", { className: "muted", text: "The result is empty." });
    const show = (v) => clip(typeof v === "string" || typeof v === "number" ? v : JSON.stringify(v), 120);
    return el("table", { className: "compact", id: "top-words" },
      el("thead", null, el("tr", null, el("th", { text: "#" }), el("th", { text: "Key" }), el("th", { text: "Value" }))),
      el("tbody", null, ...top.top.map(([key, value], i) => el("tr", null,
        el("td", { className: "muted", text: i + 1 }), el("td", { className: "mono", text: show(key) }),
        el("td", { className: "num", text: show(value) })))),
      el("caption", { text: "top " + top.top.length + " of " + top.keys + " keys" }));
  }

  function drawDetail(s) {
    const a = s.attempts;
    const parts = [
      el("div", { className: "detail-head" }, el("span", { id: "detail-state" }, badge(s.state)),
        el("span", { text: " " + s.job + " on " + clip(s.input.name, 80) + " (" + s.input.kind + ", "
          + bytes(s.input.size) + ")" })),
      s.error ? el("pre", { className: "error-box", id: "detail-error", text: s.error }) : null,
      el("div", { className: "columns" },
        el("div", null, el("h3", { text: "Splits" }), splitCounts(s.splits.counts),
          splitList("Failed splits and their causes", failedSplits(s), "failed-splits", s.splits.counts.failed),
          splitList("Running", s.splits.running)),
        el("div", null, el("h3", { text: "Reducers" }), partitionTable(s.partition_status))),
      el("div", { id: "timeline-section" }, el("h3", { text: "Timeline" }), timeline(s)),
      el("div", { className: "columns" },
        el("div", null, el("h3", { text: "Timing and attempts" }), facts([
          ["created", clock(s.created)], ["finished", clock(s.finished)], ["duration", duration(jobDuration(s))],
          ["attempts", String(a.started)], ["retries", String(a.retries)],
          ["duplicate streams", String(a.duplicate_streams)],
          ["stale dropped", String(a.stale_dropped + a.late_reports_dropped)],
          ["last failure", a.last_failure ? clip(a.last_failure, 300) : "–"],
          ["mappers", String(s.mappers.length)], ["epoch", String(s.epoch)]])),
        el("div", null, el("h3", { text: "Top " + TOP_N }), topTable(s))),
      el("div", { className: "columns" },
        el("div", null, el("h3", { text: "Counters" }), counterTable(s.counters)),
        el("div", null, el("h3", { text: "Bad records" }), badRecords(s.bad_records))),
    ];
    $("detail").replaceChildren(...parts.filter(Boolean));
  }

  // The failed splits to list: the summary's first few, or a page of them when the job has more.
  function failedSplits(s) {
    const page = (listings.get(s.id) || {}).failed;
    return page ? page.items : s.splits.failed;
  }

  function timeline(s) {
    const all = (listings.get(s.id) || {}).all;
    if (!all) return el("p", { className: "muted", text: "Loading…" });
    if (!window.mapreduceTimeline) return el("p", { className: "error", text: "The timeline script did not load." });
    return window.mapreduceTimeline.draw(s, all, bytes);
  }

  async function loadListings(s) {
    const known = listings.get(s.id);
    if (known && FINISHED.has(s.state) && known.state === s.state) return; // final: fetched once
    const page = async (query) => (await api(jobPath(s.id) + "?" + query)).splits;
    const listing = { state: s.state, all: await page("splits=all&limit=" + TIMELINE_SPLITS) };
    if (s.splits.counts.failed > s.splits.failed.length) {
      listing.failed = await page("splits=failed&limit=" + FAILED_SPLITS);
    }
    listings.set(s.id, listing);
  }

  async function loadDetail() {
    const id = selected;
    if (!id) return;
    let s = statuses.get(id);
    if (!s || !FINISHED.has(s.state) || !s.partition_status) {
      try {
        s = await api(jobPath(id));
      } catch (error) {
        if (error.status === 404 && selected === id) {
          $("detail").replaceChildren(el("p", { className: "error", text: error.message }));
          return;
        }
        throw error;
      }
      statuses.set(id, s);
    }
    try {
      await loadListings(s);
    } catch (error) {
      if (error instanceof NeedToken) throw error;
      if (error.status !== 404) throw error; // expired meanwhile: the status says so on the next tick
    }
    if (s.state === "done" && !tops.has(id)) {
      try {
        const answer = await api(jobPath(id) + "/result?top=" + TOP_N);
        tops.set(id, { top: answer.top, keys: answer.keys });
      } catch (error) {
        if (error instanceof NeedToken) throw error;
        tops.set(id, { error: error.message });
      }
    }
    if (selected === id) drawDetail(s);
  }

  // ------------------------------------------------------------------ the loop

  function problem(message) {
    $("problem").hidden = !message;
    $("problem").textContent = message || "";
  }

  function askForToken(message) {
    waitingForToken = true;
    $("login").hidden = false;
    $("content").hidden = true;
    $("login-error").textContent = message || "";
    $("token-input").focus();
  }

  async function tick() {
    timer = null;
    if (waitingForToken || document.hidden) return; // visibilitychange starts it again
    try {
      const work = [loadJobs(), loadDetail()];
      if (Date.now() - clusterAt >= CLUSTER_MS) {
        clusterAt = Date.now();
        work.push(api("v1/cluster/actors").then(drawCluster));
      }
      await Promise.all(work);
      problem("");
      $("updated").textContent = "updated " + new Date().toLocaleTimeString();
    } catch (error) {
      if (error instanceof NeedToken) {
        const had = sessionStorage.getItem(TOKEN_KEY);
        sessionStorage.removeItem(TOKEN_KEY);
        clusterAt = 0;
        askForToken(had ? "The master refused that token." : "");
        return;
      }
      problem("Cannot reach the master: " + error.message);
    }
    schedule(POLL_MS);
  }

  function schedule(delay) {
    if (timer !== null) clearTimeout(timer);
    timer = setTimeout(tick, delay);
  }

  function start() {
    $("forget-token").hidden = !sessionStorage.getItem(TOKEN_KEY);
    $("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const token = $("token-input").value.trim();
      $("token-input").value = "";
      if (!token) return;
      sessionStorage.setItem(TOKEN_KEY, token);
      waitingForToken = false;
      $("login").hidden = true;
      $("content").hidden = false;
      $("forget-token").hidden = false;
      schedule(0);
    });
    $("forget-token").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      location.reload();
    });
    $("close-detail").addEventListener("click", () => select(null));
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && !waitingForToken) schedule(0);
    });
    const match = /^#job=(.+)$/.exec(location.hash);
    if (match) select(decodeURIComponent(match[1]));
    schedule(0);
  }

  start();
})();
