/**
 * The dashboard served at `GET /`: one self-contained page (inline CSS and
 * script, nothing fetched from elsewhere, no build step) over the JSON API.
 *
 * - The header polls `/v0/status`, the orders table `/v0/orders`, every 2 s;
 *   the timeline follows `/v0/runs/stream` and backfills from `/v0/runs`
 *   whenever the stream (re)opens, so a dropped connection loses no run.
 * - No-op runs are the point of orderly (they write nothing to the database):
 *   the timeline shows them dimmed, a timestamp and a name, never expandable.
 * - Runs that did something expand to their record and output tail, fetched
 *   only when opened: the output lives in the audit database, not in memory.
 * - A token given as `?token=` or `#token=` goes on every request as
 *   `Authorization: Bearer`, and on the stream's URL (EventSource cannot set
 *   headers). Mutations carry `X-GC-Request: true`, Gas City's CSRF guard.
 * - Every string from the API reaches the page through `textContent` or an
 *   attribute, never through markup: an order name or an output line cannot
 *   inject anything.
 *
 * The `data-testid` attributes are the contract of test/http/dashboard.browser.test.ts.
 * The script avoids backticks and `${`: it lives inside this template literal.
 */
export const DASHBOARD_HTML: string = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>orderly</title>
<style>
  :root {
    --fg: #1d1f21; --muted: #6a6f75; --line: #e3e5e8; --bg: #fff; --panel: #f7f8f9;
    --work: #1a7f37; --noop: #8a8f96; --fail: #c62828; --timeout: #b26a00; --run: #0b61a4;
  }
  @media (prefers-color-scheme: dark) {
    :root { --fg: #e6e6e6; --muted: #9aa0a6; --line: #33373c; --bg: #16181b; --panel: #1e2125;
      --work: #4ac26b; --noop: #8a8f96; --fail: #ff6b6b; --timeout: #f0a43a; --run: #58a6ff; }
  }
  * { box-sizing: border-box; }
  body { margin: 0; font: 13px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
  code, pre, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
  header { padding: 10px 16px; border-bottom: 1px solid var(--line); background: var(--panel); }
  header h1 { margin: 0 12px 0 0; font-size: 16px; display: inline-block; }
  .sub { color: var(--muted); }
  .badge { display: inline-block; padding: 0 6px; border-radius: 8px; font-size: 11px; border: 1px solid currentColor; vertical-align: 1px; }
  .badge.live { color: var(--work); }
  .badge.down { color: var(--fail); }
  .counters { display: flex; flex-wrap: wrap; gap: 6px 18px; margin-top: 8px; }
  .counter b { display: block; font-size: 18px; font-variant-numeric: tabular-nums; }
  .counter span { color: var(--muted); font-size: 11px; }
  .counter.avoided b { color: var(--work); }
  .explain { cursor: help; border-bottom: 1px dotted var(--muted); }
  .alert { margin-top: 8px; padding: 4px 8px; border-left: 3px solid var(--fail); background: color-mix(in srgb, var(--fail) 8%, transparent); }
  .alert:empty { display: none; }
  main { display: grid; grid-template-columns: minmax(0, 3fr) minmax(320px, 2fr); gap: 16px; padding: 12px 16px; align-items: start; }
  @media (max-width: 1000px) { main { grid-template-columns: minmax(0, 1fr); } }
  h2 { font-size: 13px; margin: 0 0 6px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
  h2 label { float: right; text-transform: none; letter-spacing: 0; font-weight: normal; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: 3px 8px 3px 0; border-bottom: 1px solid var(--line); white-space: nowrap; }
  th { font-weight: 600; color: var(--muted); font-size: 11px; }
  td.num { font-variant-numeric: tabular-nums; }
  tr.disabled td { color: var(--muted); }
  .st { font-weight: 600; }
  .st-did-work, .o-did-work { color: var(--work); }
  .st-no-op, .st-never, .o-no-op { color: var(--noop); }
  .st-failed, .o-failed, .st-interrupted, .o-interrupted, .o-error { color: var(--fail); }
  .st-timeout, .o-timeout, .o-skipped { color: var(--timeout); }
  .st-active { color: var(--run); }
  button { font: inherit; font-size: 12px; padding: 1px 8px; cursor: pointer; }
  button:disabled { cursor: progress; }
  [data-testid="fire-result"] { margin-left: 6px; font-size: 12px; }
  #timeline { list-style: none; margin: 0; padding: 0; max-height: calc(100vh - 170px); overflow-y: auto; border-top: 1px solid var(--line); }
  @media (max-width: 1000px) { #timeline { max-height: none; } }
  .run { display: block; padding: 2px 0; border-bottom: 1px solid var(--line); animation: fade .4s ease-out; }
  .run.no-op { opacity: .45; }
  #timeline.hide-no-op .run.no-op { display: none; }
  .run summary { cursor: pointer; list-style: none; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
  .run summary::-webkit-details-marker { display: none; }
  .run summary::before { content: "\\25B8"; display: inline-block; width: 1em; color: var(--muted); }
  .run[open] summary::before { content: "\\25BE"; }
  .run.no-op::before { content: ""; display: inline-block; width: 1em; }
  .run .when { color: var(--muted); font-variant-numeric: tabular-nums; margin-right: 6px; }
  .run .what { font-weight: 600; margin-left: 6px; }
  .run .summary-line { color: var(--muted); margin-left: 6px; }
  .run dl { display: grid; grid-template-columns: max-content 1fr; gap: 1px 12px; margin: 4px 0 4px 1em; }
  .run dt { color: var(--muted); }
  .run dd { margin: 0; }
  .run pre { margin: 4px 0 6px 1em; padding: 6px 8px; background: var(--panel); border: 1px solid var(--line); max-height: 320px; overflow: auto; white-space: pre-wrap; word-break: break-all; }
  .empty { color: var(--muted); padding: 6px 0; }
  @keyframes fade { from { opacity: 0; } }
  @media (prefers-reduced-motion: reduce) { .run { animation: none; } }
</style>
</head>
<body>
<header>
  <h1 id="city">orderly</h1>
  <span class="sub">up <span id="uptime">&ndash;</span></span>
  <span class="badge down" data-testid="stream-status" id="stream-status" title="live run stream">connecting</span>
  <div class="counters">
    <div class="counter"><b id="fires">&ndash;</b><span>fires</span></div>
    <div class="counter"><b id="no-ops">&ndash;</b><span>no-ops</span></div>
    <div class="counter"><b id="did-work">&ndash;</b><span>did work</span></div>
    <div class="counter"><b id="failed">&ndash;</b><span>failed</span></div>
    <div class="counter"><b id="timeouts">&ndash;</b><span>timed out</span></div>
    <div class="counter" title="audited records durable in orderly's log, waiting to be written to the audit database"><b data-testid="outbox-depth" id="outbox-depth">&ndash;</b><span class="explain">outbox depth</span></div>
    <div class="counter avoided" id="avoided-box" title="database commits avoided, vs 4 commits per fire for Gas City's tracking bead"><b data-testid="writes-avoided" id="writes-avoided">&ndash;</b><span class="explain">database commits avoided</span></div>
  </div>
  <div class="sub" id="avoided-note">Database commits avoided: vs 4 commits per fire for Gas City's tracking bead (created, updated, closed around every fire), orderly commits only runs that did something, in batches.</div>
  <div class="alert" id="alert" role="status"></div>
</header>
<main>
  <section>
    <h2>Orders <span class="sub" id="order-count"></span></h2>
    <table>
      <thead><tr><th>order</th><th>trigger</th><th>status</th><th>last fired</th><th>next due</th><th></th></tr></thead>
      <tbody id="orders"></tbody>
    </table>
  </section>
  <section>
    <h2>Runs <label><input type="checkbox" id="hide-no-op"> hide no-ops</label></h2>
    <ol id="timeline"></ol>
    <div class="empty" id="timeline-empty">no runs yet</div>
  </section>
</main>
<script>
"use strict";
(function () {
  var POLL_MS = 2000;
  var KEEP_RUNS = 500;
  var OUTPUT_RETRIES = 30;

  // The token: ?token= (what the server reads on the page request) or #token= (never sent to a server log).
  var token = new URLSearchParams(location.search).get("token") || new URLSearchParams(location.hash.slice(1)).get("token");

  function headers(extra) {
    var h = extra || {};
    if (token) h["Authorization"] = "Bearer " + token;
    return h;
  }

  // Relative paths: the page works behind a proxy that mounts it under a prefix.
  function api(path, init) {
    init = init || {};
    init.headers = headers(init.headers);
    init.cache = "no-store";
    return fetch(path, init).then(function (res) {
      noteClock(res);
      return res.text().then(function (text) {
        var body = null;
        try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
        if (!res.ok) {
          var err = new Error(body && body.message ? body.message : "HTTP " + res.status);
          err.status = res.status;
          err.code = body && body.code;
          throw err;
        }
        return body;
      });
    });
  }

  // The server's clock, when it differs from ours by more than the Date header's one-second grain.
  var skewMs = 0;
  function noteClock(res) {
    var d = Date.parse(res.headers.get("date") || "");
    if (isNaN(d)) return;
    var off = d - Date.now();
    skewMs = Math.abs(off) > 2000 ? off : 0;
  }
  function now() { return Date.now() + skewMs; }

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) if (attrs[k] !== undefined && attrs[k] !== null) e.setAttribute(k, String(attrs[k]));
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function $(id) { return document.getElementById(id); }
  function setText(id, v) { var e = $(id); var s = String(v); if (e.textContent !== s) e.textContent = s; }

  function span(n, unit) { return n + " " + unit; }
  function duration(ms) {
    var s = Math.round(Math.abs(ms) / 1000);
    if (s < 60) return span(s, "s");
    if (s < 3600) return span(Math.floor(s / 60), "min") + (s % 60 && s < 600 ? " " + span(s % 60, "s") : "");
    if (s < 86400) return span(Math.floor(s / 3600), "h") + " " + span(Math.floor((s % 3600) / 60), "min");
    return span(Math.floor(s / 86400), "d") + " " + span(Math.floor((s % 86400) / 3600), "h");
  }
  function ago(iso) {
    if (!iso) return "never";
    var ms = now() - Date.parse(iso);
    return ms < 1000 ? "just now" : duration(ms) + " ago";
  }
  function until(iso) {
    var ms = Date.parse(iso) - now();
    return ms <= 500 ? "due now" : "in " + duration(ms);
  }
  function pad(n) { return n < 10 ? "0" + n : String(n); }
  function clock(iso) {
    var d = new Date(iso);
    return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  }
  function ms(n) { return n < 1000 ? n + " ms" : (n / 1000).toFixed(n < 10000 ? 2 : 1) + " s"; }
  function fmt(n) { return typeof n === "number" ? n.toLocaleString("en-US") : "\\u2013"; }

  // ------------------------------------------------------------ header

  var startedAt = null;
  var alerts = { poll: "", store: "", audit: "" };
  function showAlerts() {
    var parts = [alerts.poll, alerts.store, alerts.audit].filter(Boolean);
    setText("alert", parts.join(" \\u00b7 "));
  }

  function renderStatus(s) {
    setText("city", s.city);
    document.title = s.city + " \\u2013 orderly";
    startedAt = s.started_at;
    setText("fires", fmt(s.fires));
    setText("no-ops", fmt(s.no_ops));
    setText("did-work", fmt(s.did_work));
    setText("failed", fmt(s.failed));
    setText("timeouts", fmt(s.timeouts));
    setText("outbox-depth", fmt(s.outbox_depth));
    setText("writes-avoided", fmt(s.db_writes_avoided));
    $("avoided-box").title = "database commits avoided, vs 4 commits per fire for Gas City's tracking bead: " + fmt(s.fires) + " fires \\u00d7 4 = " +
      fmt(s.fires * 4) + " commits; orderly made " + fmt(s.audit_writes) + " audit write(s) in " + fmt(s.audit_transactions) + " transaction(s)";
    alerts.store = s.store_poisoned ? "lease store stopped: " + s.store_poisoned : "";
    alerts.audit = s.audit_unavailable ? "audit database: " + s.audit_unavailable + " (records wait in the outbox)" : "";
    showAlerts();
  }

  // ------------------------------------------------------------ orders

  var rows = new Map();

  function orderRow(o) {
    var tr = el("tr", { "data-testid": "order-row", "data-scoped-name": o.scoped_name });
    var name = el("td", { "class": "mono" }, o.scoped_name);
    var trig = el("td");
    var status = el("td");
    var last = el("td", { "class": "num" });
    var next = el("td", { "class": "num" });
    var act = el("td");
    var button = el("button", { type: "button", "data-testid": "fire-button", title: "fire " + o.scoped_name + " now" }, "Fire");
    var result = el("span", { "data-testid": "fire-result", "aria-live": "polite" });
    button.addEventListener("click", function () { fire(o.scoped_name, button, result); });
    act.append(button, result);
    tr.append(name, trig, status, last, next, act);
    return { tr: tr, trig: trig, status: status, last: last, next: next, order: o };
  }

  function renderOrders(list) {
    var body = $("orders");
    var seen = new Set();
    list.forEach(function (o, i) {
      seen.add(o.scoped_name);
      var r = rows.get(o.scoped_name);
      if (!r) { r = orderRow(o); rows.set(o.scoped_name, r); }
      r.order = o;
      if (body.children[i] !== r.tr) body.insertBefore(r.tr, body.children[i] || null);
      r.tr.className = o.enabled ? "" : "disabled";
      if (r.trig.textContent !== o.cadence) { r.trig.textContent = o.cadence || o.trigger; r.trig.title = o.trigger; }
      var label = o.status === "active" ? "running" : o.enabled ? o.status : "disabled";
      if (r.status.textContent !== label) {
        r.status.textContent = label;
        r.status.className = "st st-" + o.status;
      }
      r.last.title = o.last_fired_at || "";
      r.next.title = o.next_due_at || "";
      tickRow(r);
    });
    rows.forEach(function (r, name) {
      if (!seen.has(name)) { r.tr.remove(); rows.delete(name); }
    });
    setText("order-count", "(" + list.length + ")");
  }

  function tickRow(r) {
    var o = r.order;
    var last = ago(o.last_fired_at);
    if (r.last.textContent !== last) r.last.textContent = last;
    var next = o.next_due_at ? until(o.next_due_at) : o.status === "active" ? "running" : o.trigger === "event" ? "on event" : o.trigger === "manual" ? "manual" : "\\u2013";
    if (r.next.textContent !== next) r.next.textContent = next;
  }

  function fire(name, button, result) {
    button.disabled = true;
    result.className = "";
    result.removeAttribute("data-fire-id");
    result.textContent = "firing\\u2026";
    var t0 = performance.now();
    api("v0/orders/" + encodeURIComponent(name) + "/fire", { method: "POST", headers: { "X-GC-Request": "true" } }).then(function (r) {
      if (r.fire_id) result.setAttribute("data-fire-id", r.fire_id);
      if (r.outcome) {
        result.className = "o-" + r.outcome;
        result.textContent = r.outcome + " in " + ms(Math.round(performance.now() - t0));
      } else {
        result.className = "o-skipped";
        result.textContent = "skipped: " + (r.skipped || "?") + (r.detail ? " (" + r.detail + ")" : "");
      }
    }, function (err) {
      result.className = "o-error";
      result.textContent = "error" + (err.status ? " " + err.status : "") + ": " + err.message;
    }).finally(function () {
      button.disabled = false;
      refresh();
    });
  }

  // ------------------------------------------------------------ timeline

  var runs = [];        // newest first, by ended_at
  var byId = new Map(); // fire_id -> li

  function addRun(run) {
    if (!run || byId.has(run.fire_id)) return;
    var node = runNode(run);
    byId.set(run.fire_id, node);
    var t = Date.parse(run.ended_at);
    var i = 0;
    while (i < runs.length && Date.parse(runs[i].ended_at) > t) i++;
    var list = $("timeline");
    list.insertBefore(node, i < runs.length ? byId.get(runs[i].fire_id) : null);
    runs.splice(i, 0, run);
    while (runs.length > KEEP_RUNS) {
      var old = runs.pop();
      var n = byId.get(old.fire_id);
      if (n) n.remove();
      byId.delete(old.fire_id);
    }
    $("timeline-empty").hidden = true;
  }

  function runNode(run) {
    var attrs = { "class": "run " + run.outcome, "data-testid": "run", "data-outcome": run.outcome, "data-fire-id": run.fire_id, title: run.ended_at };
    var when = el("span", { "class": "when" }, clock(run.ended_at));
    if (run.outcome === "no-op") {
      // Nothing to show: a no-op leaves no record, by design.
      var li = el("li", attrs);
      li.append(when, el("span", { "class": "mono" }, run.scoped_name));
      return li;
    }
    var item = el("li", { "class": "run-item" });
    var det = el("details", attrs);
    var sum = el("summary");
    sum.append(when, el("span", { "class": "mono" }, run.scoped_name), el("span", { "class": "what o-" + run.outcome }, run.outcome));
    sum.title = run.ended_at + (run.summary ? "\\n" + run.summary : "");
    sum.append(el("span", { "class": "summary-line" }, ms(run.duration_ms) + (run.summary ? " \\u00b7 " + run.summary : "") + (run.audited ? "" : " \\u00b7 not audited")));
    det.append(sum);
    var loaded = false;
    det.addEventListener("toggle", function () {
      if (det.open && !loaded) { loaded = true; loadDetail(run, det); }
    });
    // The li keeps the list a list; the details carries the test ids and classes of a run.
    item.append(det);
    return item;
  }

  function field(dl, k, v) { dl.append(el("dt", null, k), el("dd", { "class": "mono" }, v === null || v === undefined || v === "" ? "\\u2013" : v)); }

  function loadDetail(run, det) {
    var dl = el("dl");
    field(dl, "fire id", run.fire_id);
    field(dl, "fence", run.fence);
    field(dl, "trigger", run.trigger);
    field(dl, "exit code", run.exit_code);
    field(dl, "duration", ms(run.duration_ms));
    field(dl, "audited", run.audited ? "yes" : "no");
    field(dl, "started", run.started_at);
    field(dl, "ended", run.ended_at);
    var extra = el("dl");
    var pre = el("pre", { "data-testid": "run-output" }, "loading output\\u2026");
    det.append(dl, extra, pre);
    var tries = 0;
    function attempt() {
      api("v0/runs/" + encodeURIComponent(run.fire_id)).then(function (d) {
        if (d.record) {
          extra.replaceChildren();
          if (d.record.signal) field(extra, "signal", d.record.signal);
          if (d.record.labels && d.record.labels.length) field(extra, "labels", d.record.labels.join(", "));
          pre.textContent = d.output ? d.output : "(no output)";
          return;
        }
        if (d.audit_unavailable) { pre.textContent = "output unavailable: " + d.audit_unavailable; return; }
        if (!run.audited) { pre.textContent = "not audited: the output was not kept"; return; }
        // Durable in the outbox, not yet in the database: it will be.
        if (++tries > OUTPUT_RETRIES) { pre.textContent = "not in the audit database yet; close and reopen to try again"; loadedAgain(det, run); return; }
        pre.textContent = "waiting for the audit database\\u2026";
        setTimeout(attempt, 1000);
      }, function (err) {
        pre.textContent = err.status === 404 ? "this run is no longer known" : "could not load the output: " + err.message;
        loadedAgain(det, run);
      });
    }
    attempt();
  }

  // Lets a later open try again after a failed load.
  function loadedAgain(det, run) {
    det.addEventListener("toggle", function again() {
      if (!det.open) return;
      det.removeEventListener("toggle", again);
      while (det.children.length > 1) det.lastChild.remove();
      loadDetail(run, det);
    });
  }

  $("hide-no-op").addEventListener("change", function (e) { $("timeline").classList.toggle("hide-no-op", e.target.checked); });

  function backfill() {
    return api("v0/runs?limit=200").then(function (r) {
      // Oldest first, so each lands at the top in turn.
      r.runs.slice().reverse().forEach(addRun);
    });
  }

  // ------------------------------------------------------------ live

  var stream = null;
  var streamUp = false;
  function setStream(up) {
    streamUp = up;
    var b = $("stream-status");
    b.textContent = up ? "live" : "disconnected";
    b.className = "badge " + (up ? "live" : "down");
  }

  function connect() {
    var url = "v0/runs/stream" + (token ? "?token=" + encodeURIComponent(token) : "");
    stream = new EventSource(url);
    stream.addEventListener("run", function (e) {
      try { addRun(JSON.parse(e.data)); } catch (err) { /* a malformed event is skipped, the next backfill has it */ }
    });
    stream.onopen = function () {
      setStream(true);
      backfill().catch(function () {});
    };
    stream.onerror = function () {
      setStream(false);
      // The browser retries by itself unless it gave up (an error status): then so do we, later.
      if (stream.readyState === EventSource.CLOSED) {
        stream.close();
        setTimeout(connect, 3000);
      }
    };
  }

  var refreshing = null;
  function refresh() {
    if (refreshing) return refreshing;
    var work = [api("v0/status").then(renderStatus), api("v0/orders").then(function (r) { renderOrders(r.orders); })];
    // While the stream is down, the poll keeps the timeline current.
    if (!streamUp) work.push(backfill());
    refreshing = Promise.all(work).then(function () {
      alerts.poll = "";
    }, function (err) {
      alerts.poll = err.status === 401 ? "unauthorized: open this page with ?token=<token>" : "cannot reach the controller: " + err.message;
    }).finally(function () {
      refreshing = null;
      showAlerts();
    });
    return refreshing;
  }

  function poll() { refresh().finally(function () { setTimeout(poll, POLL_MS); }); }

  setInterval(function () {
    if (startedAt) setText("uptime", duration(now() - Date.parse(startedAt)));
    rows.forEach(tickRow);
  }, 1000);

  setStream(false);
  connect();
  poll();
})();
</script>
</body>
</html>
`;
