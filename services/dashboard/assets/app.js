// The dashboard page: reads the JSON API, draws one uPlot chart per metric, and re-reads when the
// pipeline reports a run over Server-Sent Events. Plain JavaScript, no build step.
(function () {
  "use strict";

  // Problems are kept where a person (devtools) or the browser test can see them.
  const pageErrors = (window.__dashboardErrors = []);
  window.addEventListener("error", (e) => pageErrors.push(String(e.message || e)));
  window.addEventListener("unhandledrejection", (e) => pageErrors.push(String(e.reason)));
  document.addEventListener("securitypolicyviolation", (e) =>
    pageErrors.push("blocked by the content security policy: " + e.violatedDirective + " " + e.blockedURI));

  const METRICS = {
    cases: { label: "Cases", color: "#1d4ed8", fill: "rgba(29, 78, 216, 0.28)" },
    deaths: { label: "Deaths", color: "#b42318", fill: "rgba(180, 35, 24, 0.28)" },
    recovered: { label: "Recovered", color: "#127a3d", fill: "rgba(18, 122, 61, 0.28)" },
  };
  const AVG_DAYS = 7;
  const CHART_HEIGHT = 300;

  const state = {
    series: null, // columns of the last /api/v1/us/daily answer
    meta: null,
    charts: {},
    seriesRequest: 0,
    everConnected: false,
  };
  window.covidDashboard = state;

  const $ = (selector) => document.querySelector(selector);
  const numberFormat = new Intl.NumberFormat("en-US");
  const fmt = (v) => (v == null ? "not reported" : numberFormat.format(Math.round(v)));

  // The legend shows the hovered day; "—" while no day is hovered.
  const legendValue = (u, v, seriesIndex, index) => (index == null ? "—" : fmt(v));

  function fmtShort(v) {
    if (v == null) return "";
    const a = Math.abs(v);
    if (a >= 1e9) return +(v / 1e9).toFixed(1) + "B";
    if (a >= 1e6) return +(v / 1e6).toFixed(1) + "M";
    if (a >= 1e3) return +(v / 1e3).toFixed(1) + "k";
    return String(+v.toFixed(2));
  }

  function fmtSigned(v) {
    if (v == null) return "";
    return (v > 0 ? "+" : v < 0 ? "−" : "±") + numberFormat.format(Math.abs(v));
  }

  function fmtTime(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return d.toISOString().slice(0, 16).replace("T", " ") + " UTC";
  }

  function fmtAgo(iso) {
    const seconds = (Date.now() - new Date(iso).getTime()) / 1000;
    if (seconds < 90) return "just now";
    const minutes = seconds / 60;
    if (minutes < 90) return Math.round(minutes) + " min ago";
    const hours = minutes / 60;
    if (hours < 36) return Math.round(hours) + " h ago";
    return Math.round(hours / 24) + " days ago";
  }

  const dayToSeconds = (date) => Date.parse(date + "T00:00:00Z") / 1000;
  const secondsToDay = (s) => new Date(s * 1000).toISOString().slice(0, 10);

  // ---- options -------------------------------------------------------------------------------

  function options() {
    return {
      metrics: Array.from(document.querySelectorAll('input[name="metric"]:checked'), (i) => i.value),
      view: $('input[name="view"]:checked').value,
      avg: $("#avg").checked,
      scale: $('input[name="scale"]:checked').value,
      from: $("#from").value,
      to: $("#to").value,
    };
  }

  function rangeQuery(o) {
    const params = new URLSearchParams();
    if (o.from) params.set("from", o.from);
    if (o.to) params.set("to", o.to);
    return params;
  }

  function updateCsvLink(o) {
    const params = rangeQuery(o);
    const fields = o.metrics.map((m) => (o.view === "daily" ? "new_" + m : m));
    if (fields.length) params.set("fields", fields.join(","));
    if (o.view === "daily" && o.avg && fields.length) params.set("avg", String(AVG_DAYS));
    params.set("format", "csv");
    $("#csv").href = "/api/v1/us/daily?" + params.toString();
  }

  // ---- data ----------------------------------------------------------------------------------

  // The browser revalidates with If-None-Match (the API sends ETags and no-cache), so re-reading
  // unchanged data costs a 304.
  async function getJSON(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    if (!response.ok) {
      let message = response.status + " " + response.statusText;
      try {
        const body = await response.json();
        if (body && body.error) message = body.error;
      } catch (_) {
        /* the status line says enough */
      }
      throw new Error(message);
    }
    return response.json();
  }

  function toColumns(body) {
    const names = body.fields.concat(body.averages);
    const columns = { x: new Array(body.rows.length), dates: new Array(body.rows.length) };
    for (const name of names) columns[name] = new Array(body.rows.length);
    body.rows.forEach((row, i) => {
      columns.dates[i] = row.date;
      columns.x[i] = dayToSeconds(row.date);
      for (const name of names) columns[name][i] = row[name];
    });
    columns.truncated = body.truncated;
    return columns;
  }

  async function loadSeries() {
    const o = options();
    const request = ++state.seriesRequest;
    const params = rangeQuery(o);
    params.set("avg", String(AVG_DAYS));
    const body = await getJSON("/api/v1/us/daily?" + params.toString());
    if (request !== state.seriesRequest) return; // a newer range was asked for meanwhile
    state.series = toColumns(body);
    renderCharts();
    renderKpis();
  }

  async function loadMeta() {
    state.meta = await getJSON("/api/v1/meta");
    renderFreshness();
    const first = state.meta.first_date || "";
    const last = state.meta.last_date || "";
    for (const input of [$("#from"), $("#to")]) {
      input.min = first;
      input.max = last;
    }
    if (state.series) renderCharts(); // the "not reported" band depends on it
    renderKpis();
  }

  async function loadCorrections() {
    const body = await getJSON("/api/v1/us/changes?limit=20");
    const tbody = $("#corrections tbody");
    tbody.replaceChildren();
    if (!body.changes.length) {
      tbody.append(row([cell("No corrections recorded yet.", "muted", 6)]));
      return;
    }
    for (const c of body.changes) {
      const delta = c.old_value != null && c.new_value != null ? c.new_value - c.old_value : null;
      tbody.append(
        row([
          cell(c.date),
          cell(c.field),
          cell(fmt(c.old_value), "num"),
          cell(fmt(c.new_value), "num"),
          cell(fmtSigned(delta), "num " + (delta > 0 ? "up" : delta < 0 ? "down" : "")),
          cell(fmtTime(c.changed_at)),
        ])
      );
    }
  }

  async function loadRuns() {
    const body = await getJSON("/api/v1/runs?limit=10");
    const tbody = $("#runs tbody");
    tbody.replaceChildren();
    if (!body.runs.length) {
      tbody.append(row([cell("No runs recorded yet.", "muted", 8)]));
      return;
    }
    for (const r of body.runs) {
      const count = (v) => cell(v == null ? "" : numberFormat.format(v), "num");
      let note = r.error || "";
      if (r.status === "failed" && (r.stage || r.kind)) note = [r.stage, r.kind].filter(Boolean).join(" / ") + (note ? ": " + note : "");
      if (!note && r.sources.length) {
        note = r.sources
          .map((s) => (s.source || "?") + " " + (s.commit_sha || "").slice(0, 7) + (s.commit_time ? " (" + fmtTime(s.commit_time) + ")" : ""))
          .join(", ");
      }
      tbody.append(
        row([
          cell(fmtTime(r.finished_at || r.started_at)),
          cell(r.status || "unknown", "status status-" + (r.status || "unknown")),
          // Runs of the state and county datasets are listed too, named.
          cell((r.dataset && r.dataset !== "us" ? r.dataset + ": " : "") + (r.trigger || "")),
          count(r.inserted),
          count(r.updated),
          count(r.removed),
          count(r.revised),
          cell(note, "note"),
        ])
      );
    }
  }

  function row(cells) {
    const tr = document.createElement("tr");
    tr.append(...cells);
    return tr;
  }

  function cell(text, className, colSpan) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    if (colSpan) td.colSpan = colSpan;
    return td;
  }

  // Runs one refresh at a time; a request made meanwhile runs once more afterwards.
  let refreshing = null;
  let refreshAgain = false;
  function refreshAll() {
    if (refreshing) {
      refreshAgain = true;
      return refreshing;
    }
    refreshing = Promise.all([loadMeta(), loadSeries(), loadCorrections(), loadRuns()])
      .then(clearError, (err) => showError("Could not load the data: " + err.message))
      .finally(() => {
        refreshing = null;
        if (refreshAgain) {
          refreshAgain = false;
          refreshAll();
        }
      });
    return refreshing;
  }

  // ---- rendering -----------------------------------------------------------------------------

  function showError(message) {
    const el = $("#error");
    el.textContent = message;
    el.hidden = false;
  }

  function clearError() {
    $("#error").hidden = true;
  }

  function renderFreshness() {
    const badge = $("#freshness");
    const meta = state.meta;
    if (!meta) return;
    const success = meta.last_success;
    if (!success) {
      badge.dataset.state = "empty";
      badge.textContent = meta.rows ? "No successful run recorded" : "No data loaded yet";
      badge.title = "";
      return;
    }
    const at = success.finished_at || success.started_at;
    badge.dataset.state = meta.stale ? "stale" : "fresh";
    badge.textContent =
      (meta.stale ? "Stale: last run " : "Last run ") + fmtAgo(at) + " · data through " + (meta.last_date || "—");
    const sources = meta.sources
      .map((s) => (s.source || "?").toUpperCase() + " commit " + (s.commit_sha || "?").slice(0, 7) + " at " + fmtTime(s.commit_time))
      .join("\n");
    badge.title = "Last successful run " + success.run_id + " finished " + fmtTime(at) + (sources ? "\n" + sources : "");
  }

  function renderKpis() {
    const s = state.series;
    const n = s ? s.x.length : 0;
    for (const metric of Object.keys(METRICS)) {
      const total = $("#kpi-" + metric);
      const daily = $("#kpi-new_" + metric);
      const value = n ? s[metric][n - 1] : undefined;
      const change = n ? s["new_" + metric][n - 1] : undefined;
      total.classList.toggle("not-reported", value === null);
      if (value === undefined) {
        total.textContent = "–";
        daily.textContent = "";
      } else if (value === null) {
        // JHU stopped reporting recovered: say so, never show a zero.
        total.textContent = "Not reported";
        const last = state.meta && state.meta.recovered_last_reported;
        daily.textContent = last ? "last reported on " + last : "not reported in this range";
      } else {
        total.textContent = numberFormat.format(value);
        daily.textContent = change == null ? "" : fmtSigned(change) + " that day";
      }
    }
    $("#kpi-date").textContent = n ? "As of " + s.dates[n - 1] + ", the last day in the selected range." : "No data in the selected range.";
  }

  function destroyChart(metric) {
    if (state.charts[metric]) {
      state.charts[metric].destroy();
      delete state.charts[metric];
    }
  }

  // Shades the days a metric is not reported (after the last reported day) and says so.
  function notReportedBand(lastReportedX, label) {
    return {
      hooks: {
        draw: [
          (u) => {
            if (lastReportedX === undefined) return;
            const { left, top, width, height } = u.bbox;
            const start = lastReportedX === null ? left : u.valToPos(lastReportedX + 43200, "x", true);
            const x0 = Math.max(left, start);
            const x1 = left + width;
            if (x0 >= x1) return;
            const ctx = u.ctx;
            const dpr = window.devicePixelRatio || 1;
            ctx.save();
            ctx.beginPath();
            ctx.rect(x0, top, x1 - x0, height);
            ctx.clip();
            ctx.fillStyle = "rgba(91, 102, 117, 0.12)";
            ctx.fillRect(x0, top, x1 - x0, height);
            ctx.fillStyle = "#3d4653";
            ctx.font = 12 * dpr + "px system-ui, sans-serif";
            ctx.textAlign = "left";
            ctx.textBaseline = "top";
            ctx.fillText(label, x0 + 8 * dpr, top + 8 * dpr);
            ctx.restore();
          },
        ],
      },
    };
  }

  function renderCharts() {
    const s = state.series;
    if (!s) return;
    const o = options();
    $("#avg").disabled = o.view !== "daily";
    updateCsvLink(o);
    const n = s.x.length;
    for (const [metric, info] of Object.entries(METRICS)) {
      const figure = $("#chart-" + metric);
      const shown = o.metrics.includes(metric);
      figure.hidden = !shown;
      destroyChart(metric);
      if (!shown) continue;

      const field = o.view === "daily" ? "new_" + metric : metric;
      const log = o.scale === "log";
      // A logarithmic axis has no place for zero or negative days (upstream corrections).
      const plotValues = (values) => (log ? values.map((v) => (v != null && v > 0 ? v : null)) : values);
      const data = [s.x, plotValues(s[field])];
      const series = [
        { label: "Date", value: (u, ts) => (ts == null ? "—" : secondsToDay(ts)) },
        {
          label: o.view === "daily" ? "New " + info.label.toLowerCase() : info.label,
          stroke: info.color,
          fill: o.view === "daily" ? info.fill : undefined,
          width: o.view === "daily" ? 1 : 2,
          paths: o.view === "daily" && !log ? uPlot.paths.bars({ size: [0.9, 12] }) : undefined,
          points: { show: false },
          value: legendValue,
        },
      ];
      if (o.view === "daily" && o.avg) {
        data.push(plotValues(s[field + "_avg" + AVG_DAYS]));
        series.push({
          label: AVG_DAYS + "-day average",
          stroke: "#111827",
          width: 2,
          points: { show: false },
          value: legendValue,
        });
      }

      // The last day with a value; null when none in range (undefined: reported throughout).
      let lastReported;
      const values = s[field];
      if (n && values[n - 1] == null) {
        let i = n - 1;
        while (i >= 0 && values[i] == null) i--;
        lastReported = i >= 0 ? s.x[i] : null;
      }
      const bandLabel =
        lastReported === null
          ? "Not reported in this range"
          : "Not reported after " + (lastReported !== undefined ? secondsToDay(lastReported) : "");

      const plot = figure.querySelector(".plot");
      const width = Math.max(320, plot.clientWidth || figure.clientWidth - 24);
      const chart = new uPlot(
        {
          width,
          height: CHART_HEIGHT,
          tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
          cursor: { sync: { key: "covid" }, drag: { x: true, y: false, setScale: false } },
          scales: {
            x: { time: true },
            y: log
              ? { distr: 3, log: 10, range: (u, min, max) => (min == null ? [1, 10] : uPlot.rangeLog(min, max, 10, true)) }
              : { range: (u, min, max) => (min == null ? [0, 1] : [Math.min(0, min), max > 0 ? max * 1.05 : 1]) },
          },
          axes: [{}, { size: 64, values: (u, splits) => splits.map(fmtShort) }],
          series,
          plugins: [notReportedBand(lastReported, bandLabel)],
          hooks: {
            // Dragging across a chart selects that date range for every chart.
            setSelect: [
              (u) => {
                if (u.select.width < 2) return;
                const from = secondsToDay(u.posToVal(u.select.left, "x"));
                const to = secondsToDay(u.posToVal(u.select.left + u.select.width, "x"));
                u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
                $("#from").value = from;
                $("#to").value = to;
                onRangeChange();
              },
            ],
          },
        },
        data,
        plot
      );
      state.charts[metric] = chart;

      const first = n ? s.dates[0] : null;
      const last = n ? s.dates[n - 1] : null;
      figure.dataset.points = String(n);
      figure.dataset.lastDate = last || "";
      figure.dataset.view = o.view;
      figure.dataset.scale = o.scale;
      figure.dataset.series = series.slice(1).map((x) => x.label).join("|");
      const caption = figure.querySelector("figcaption");
      const title = series[1].label + (o.view === "daily" ? " per day" : ", cumulative") + (log ? " (log scale)" : "");
      let detail = n ? numberFormat.format(n) + " days, " + first + " to " + last : "no data in this range";
      if (lastReported !== undefined && n) detail += "; not reported " + (lastReported === null ? "in this range" : "after " + secondsToDay(lastReported));
      if (s.truncated) detail += "; range cut to the first " + numberFormat.format(n) + " days";
      caption.replaceChildren(document.createTextNode(title + " "), Object.assign(document.createElement("span"), { className: "detail", textContent: "— " + detail }));
      plot.setAttribute("aria-label", title + ": " + detail);
    }
  }

  function resizeCharts() {
    for (const [metric, chart] of Object.entries(state.charts)) {
      const plot = $("#chart-" + metric + " .plot");
      chart.setSize({ width: Math.max(320, plot.clientWidth), height: CHART_HEIGHT });
    }
  }

  // ---- live updates --------------------------------------------------------------------------

  function setLive(status, text) {
    const el = $("#live");
    el.dataset.state = status;
    el.querySelector(".label").textContent = text;
  }

  let toastTimer = null;
  function toast(message, kind) {
    const el = $("#toast");
    el.textContent = message;
    el.dataset.kind = kind;
    el.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => (el.hidden = true), 8000);
  }

  function connectLive() {
    const events = new EventSource("/api/v1/events");
    events.addEventListener("hello", (e) => {
      const hello = JSON.parse(e.data);
      setLive("connected", hello.nats === "ok" ? "Live updates: on" : "Live updates: on, waiting for the pipeline");
      // After a reconnect, runs may have landed unseen.
      if (state.everConnected) refreshAll();
      state.everConnected = true;
    });
    events.addEventListener("error", () => {
      const closed = events.readyState === EventSource.CLOSED;
      setLive(closed ? "disconnected" : "reconnecting", closed ? "Live updates: off (reload to retry)" : "Live updates: reconnecting…");
    });
    events.addEventListener("loaded", (e) => {
      const run = JSON.parse(e.data);
      const dataset = run.dataset || "us";
      if (dataset !== "us") {
        // A state or county run: the map redraws its level; the national charts stay.
        toast("Run landed (" + dataset + "): " + run.inserted + " new, " + run.updated + " updated, " + run.removed + " removed rows; data through " + run.last_date + ".", "loaded");
        window.dispatchEvent(new CustomEvent("covid:dataset-loaded", { detail: run }));
        loadRuns().catch((err) => showError("Could not load the runs: " + err.message));
        return;
      }
      toast(
        "Run landed: " + run.inserted + " new, " + run.updated + " updated, " + run.removed + " removed, " + run.revised + " revised; data through " + run.last_date + ".",
        "loaded"
      );
      refreshAll();
    });
    events.addEventListener("failed", (e) => {
      const failure = JSON.parse(e.data);
      toast("A run failed at " + failure.stage + ": " + failure.reason, "failed");
      loadRuns().catch((err) => showError("Could not load the runs: " + err.message));
      loadMeta().catch((err) => showError("Could not load the status: " + err.message));
    });
    events.addEventListener("resync", () => refreshAll());
  }

  // ---- wiring --------------------------------------------------------------------------------

  function onRangeChange() {
    const o = options();
    if (o.from && o.to && o.from > o.to) {
      showError("The start date " + o.from + " is after the end date " + o.to + ".");
      return;
    }
    loadSeries().then(clearError, (err) => showError("Could not load the series: " + err.message));
  }

  function start() {
    const form = $("#controls");
    form.addEventListener("submit", (e) => e.preventDefault());
    form.addEventListener("change", (e) => {
      if (e.target.type === "date") onRangeChange();
      else renderCharts();
    });
    $("#range-all").addEventListener("click", () => {
      $("#from").value = "";
      $("#to").value = "";
      onRangeChange();
    });
    let pending = false;
    window.addEventListener("resize", () => {
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => {
        pending = false;
        resizeCharts();
      });
    });
    setInterval(renderFreshness, 60000);
    updateCsvLink(options());
    refreshAll();
    connectLive();
  }

  start();
})();
