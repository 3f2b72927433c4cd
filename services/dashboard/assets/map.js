// The map section: every county's (or every state's) figures on one date, from
// /api/v1/{counties,states}/latest, as a choropleth on a log scale. The measure is new cases or
// new deaths that day, or their 7-day average ending that day (the list's `avg=7` columns).
// The geometry (assets/counties.json, made by scripts/county-shapes.sh) is SVG path data already
// projected: one path per 5-digit county FIPS code and one per 2-digit state code. The paths are
// built once, and a date, level or measure only changes their classes (the colours are in
// app.css); the figure's data-level shows one level's group and hides the other.
// The figure's data attributes say what is drawn and how long each part took.
// Plain JavaScript, no build step.
(function () {
  "use strict";

  const pageErrors = (window.__dashboardErrors = window.__dashboardErrors || []);
  // New York City is reported as one "county" without a FIPS code; its boroughs are shaded with it.
  const NYC = { state: "New York", county: "New York City", boroughs: ["36005", "36047", "36061", "36081", "36085"] };
  // The days of the averages the measures offer (the list's `avg`).
  const AVG_DAYS = 7;
  // What can be drawn: a column of the list, whether it needs the list's averages, and its name
  // (`short` for the narrow list beside the map).
  const MEASURES = {
    new_cases: { label: "New cases that day", short: "New cases", kind: "cases", average: false },
    new_cases_avg7: { label: "New cases, 7-day average", short: "Cases, 7-day avg.", kind: "cases", average: true },
    new_deaths: { label: "New deaths that day", short: "New deaths", kind: "deaths", average: false },
    new_deaths_avg7: { label: "New deaths, 7-day average", short: "Deaths, 7-day avg.", kind: "deaths", average: true },
  };
  // Class i holds values in [breaks[i-1], breaks[i]) (q0: below the first break, which for a day
  // is zero or fewer, as after corrections); 1-3-10 or 1-2-5 steps, so the colours follow a log
  // scale. A state reports about 50 times a county's cases, so its cases start a decade higher;
  // deaths are about 1-2 % of cases.
  const SCALES = {
    counties: { cases: [1, 10, 30, 100, 300, 1000, 3000], deaths: [1, 2, 5, 10, 20, 50, 100] },
    states: { cases: [10, 100, 300, 1000, 3000, 10000, 30000], deaths: [1, 3, 10, 30, 100, 300, 1000] },
  };
  const LEVELS = {
    counties: { dataset: "counties", noun: "county", nouns: "counties" },
    states: { dataset: "states", noun: "state", nouns: "states" },
  };

  const $ = (selector) => document.querySelector(selector);
  const numberFormat = new Intl.NumberFormat("en-US", { maximumFractionDigits: 2 });
  const fmt = (v) => (v == null ? "not reported" : numberFormat.format(v));

  // Per level: its paths by FIPS code, the rows shading them, and the last list drawn with the
  // request it answered (`key`: date asked and whether averages were included), so switching
  // level or measure back redraws without a request while nothing changed.
  const level = () => ({ paths: new Map(), byFips: new Map(), body: null, asked: null });
  const map = {
    shapes: null, // the geometry asset, once loaded
    levels: { counties: level(), states: level() },
    level: "counties", // the level drawn
    measure: "new_cases", // the measure drawn
    body: null, // the list drawn
    request: 0, // the newest draw's number
    abort: null, // the AbortController of the newest draw's fetch
    pinned: null, // the shape a tap selected
  };
  window.covidCountyMap = map;

  const breaks = () => SCALES[map.level][MEASURES[map.measure].kind];

  // The class of a value: "qn" not reported, "q0"… "q7" by the level's and measure's breaks.
  function bin(v) {
    if (v == null) return "qn";
    const steps = breaks();
    let i = 0;
    while (i < steps.length && v >= steps[i]) i++;
    return "q" + i;
  }

  // The legend's labels: whole numbers for a day's counts ("1–9"), ranges for averages, which
  // have fractions ("1 to under 10").
  function legendLabels() {
    const steps = breaks();
    const whole = !MEASURES[map.measure].average;
    const n = (v) => numberFormat.format(v);
    const labels = [whole ? (steps[0] === 1 ? "0 or fewer" : n(steps[0] - 1) + " or fewer") : "under " + n(steps[0])];
    for (let i = 1; i < steps.length; i++) {
      const [low, high] = [steps[i - 1], steps[i]];
      if (!whole) labels.push(n(low) + " to under " + n(high));
      else labels.push(high - 1 === low ? n(low) : n(low) + "–" + n(high - 1));
    }
    labels.push(n(steps[steps.length - 1]) + " or more");
    return labels;
  }

  async function getJSON(url, signal) {
    const response = await fetch(url, { headers: { Accept: "application/json" }, signal });
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

  // A frame after the one that shows the change: by then the paths are painted.
  const painted = () => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));

  // The paths are written as markup and parsed in one go: several times faster than 3,000
  // createElementNS calls. The path data and FIPS codes are checked to hold nothing but what
  // path data and codes hold.
  function buildSvg(shapes) {
    const pathData = /^[MmLlHhVvZz0-9 .,-]*$/;
    const group = (cls, paths, code) => {
      const parts = [];
      for (const [fips, d] of Object.entries(paths || {})) {
        if (code.test(fips) && pathData.test(d)) parts.push('<path class="qx" data-fips="' + fips + '" d="' + d + '"/>');
      }
      return '<g class="' + cls + '">' + parts.join("") + "</g>";
    };
    const extra = (cls, d) => (pathData.test(d) ? '<path class="' + cls + '" d="' + d + '"/>' : "");
    const size = Number(shapes.width) + " " + Number(shapes.height);
    $("#county-map .map-wrap").insertAdjacentHTML(
      "afterbegin",
      '<svg viewBox="0 0 ' + size + '" role="img" aria-labelledby="county-map-caption">' +
        group("counties", shapes.counties, /^\d{5}$/) +
        group("state-areas", shapes.stateAreas, /^\d{2}$/) +
        extra("states", shapes.states) +
        extra("nation", shapes.nation) +
        '<path class="focus" id="county-focus"/></svg>'
    );
    for (const path of document.querySelectorAll("#county-map .counties path")) map.levels.counties.paths.set(path.dataset.fips, path);
    for (const path of document.querySelectorAll("#county-map .state-areas path")) map.levels.states.paths.set(path.dataset.fips, path);
  }

  function renderLegend() {
    const legend = $("#county-legend");
    const items = legendLabels()
      .map((label, i) => ["q" + i, label])
      .concat([["qn", "not reported"], ["qx", "no row for the date"]]);
    legend.replaceChildren(
      ...items.map(([cls, label]) => {
        const li = document.createElement("li");
        const swatch = document.createElement("span");
        swatch.className = "swatch " + cls;
        li.dataset.bin = cls;
        li.append(swatch, document.createTextNode(label));
        return li;
      })
    );
  }

  // What the caption, legend, side list and table headings say the map shows.
  function describe() {
    const { noun, nouns } = LEVELS[map.level];
    const label = MEASURES[map.measure].label;
    $("#county-map-measure").textContent = label;
    $("#county-map-level").textContent = noun;
    for (const el of document.querySelectorAll("#counties .map-noun")) el.textContent = noun;
    $("#county-legend").setAttribute("aria-label", "Legend: " + label.toLowerCase() + " per " + noun);
    $("#county-unmapped-name").textContent = map.level === "states" ? "State" : "County";
    $("#county-unmapped-measure").textContent = MEASURES[map.measure].short;
    $("#county-unmapped-note").textContent =
      map.level === "states"
        ? "States and territories the map has no shape for (Puerto Rico, Guam, the Virgin Islands, the Northern Mariana Islands)."
        : "Reported without a county FIPS code (New York City's figures also shade its five boroughs).";
    const figure = $("#county-map");
    figure.dataset.level = map.level;
    figure.dataset.measure = map.measure;
    renderLegend();
    return nouns;
  }

  // Shades every path of the level drawn from its list; rows without a shape go to the list
  // beside the map. Returns how many did.
  function shade(body) {
    const current = map.levels[map.level];
    current.byFips.clear();
    const unmapped = [];
    for (const row of body.rows) {
      if (row.fips && current.paths.has(row.fips)) current.byFips.set(row.fips, row);
      else unmapped.push(row);
      if (map.level === "counties" && row.state === NYC.state && row.county === NYC.county && !row.fips) {
        for (const fips of NYC.boroughs) if (!current.byFips.has(fips)) current.byFips.set(fips, row);
      }
    }
    for (const [fips, path] of current.paths) {
      const row = current.byFips.get(fips);
      path.setAttribute("class", row ? bin(row[map.measure]) : "qx");
    }
    renderUnmapped(unmapped);
    // A tip still showing says the new figures, where it is; one of the other level goes.
    const tip = $("#county-tip");
    if (!tip.hidden && current.paths.has(tip.dataset.fips)) tip.textContent = tipText(tip.dataset.fips);
    else {
      map.pinned = null;
      hideTip();
    }
    const details = $("#county-table-details");
    if (details.open) renderTable();
    else map.tableFor = null;
    return unmapped.length;
  }

  const rowName = (row) => (row.county == null ? row.state : row.county + ", " + row.state);

  function tipText(fips) {
    const current = map.levels[map.level];
    const row = current.byFips.get(fips);
    const names = map.level === "states" ? map.shapes.stateNames : map.shapes.names;
    const name = (names && names[fips]) || "FIPS " + fips;
    if (!row) return name + " (FIPS " + fips + ")\nNo row for " + (map.body ? map.body.date : "this date");
    const title = row.fips === fips ? rowName(row) : row.county + " (" + name + "), " + row.state;
    const avg = map.body.avg;
    const lines = [title, "New cases: " + fmt(row.new_cases)];
    if (avg) lines.push("New cases, " + avg + "-day average: " + fmt(row["new_cases_avg" + avg]));
    lines.push("New deaths: " + fmt(row.new_deaths));
    if (avg) lines.push("New deaths, " + avg + "-day average: " + fmt(row["new_deaths_avg" + avg]));
    lines.push("Cases: " + fmt(row.cases), "Deaths: " + fmt(row.deaths), map.body.date);
    return lines.join("\n");
  }

  function showTip(fips, event) {
    const tip = $("#county-tip");
    const path = map.levels[map.level].paths.get(fips);
    if (!path) return;
    tip.textContent = tipText(fips);
    tip.dataset.fips = fips;
    tip.hidden = false;
    $("#county-focus").setAttribute("d", path.getAttribute("d"));
    const wrap = $("#county-map .map-wrap").getBoundingClientRect();
    let x;
    let y;
    if (event) {
      x = event.clientX - wrap.left;
      y = event.clientY - wrap.top;
    } else {
      const box = path.getBoundingClientRect();
      x = box.left + box.width / 2 - wrap.left;
      y = box.top + box.height / 2 - wrap.top;
    }
    // Beside the pointer, on the side with more room.
    tip.classList.toggle("left", x > wrap.width / 2);
    tip.style.setProperty("--x", Math.round(x) + "px");
    tip.style.setProperty("--y", Math.round(y) + "px");
  }

  function hideTip() {
    if (map.pinned) return;
    $("#county-tip").hidden = true;
    $("#county-focus").removeAttribute("d");
  }

  function renderUnmapped(rows) {
    const tbody = $("#county-unmapped tbody");
    tbody.replaceChildren();
    if (!rows.length) {
      tbody.append(tr([td("None on this date.", "muted", 3)]));
      return;
    }
    for (const r of rows) {
      const name = rowName(r) + (r.county === NYC.county && r.state === NYC.state ? " (shaded on its boroughs)" : "");
      tbody.append(tr([td(name), td(fmt(r[map.measure]), "num"), td(fmt(r.cases), "num")]));
    }
  }

  // The whole list as a table, for screen readers and anyone who wants the numbers; built only
  // when opened (3,000 rows would slow the map down).
  function renderTable() {
    const body = map.body;
    if (!body || map.tableFor === body) return;
    map.tableFor = body;
    const counties = map.level === "counties";
    const avg = body.avg;
    const columns = [["State", (r) => r.state]];
    if (counties) columns.push(["County", (r) => r.county], ["FIPS", (r) => r.fips || ""]);
    else columns.push(["FIPS", (r) => r.fips || ""]);
    const number = (title, get) => [title, (r) => fmt(get(r)), "num"];
    columns.push(number("New cases", (r) => r.new_cases));
    if (avg) columns.push(number("New cases, " + avg + "-day average", (r) => r["new_cases_avg" + avg]));
    columns.push(number("New deaths", (r) => r.new_deaths));
    if (avg) columns.push(number("New deaths, " + avg + "-day average", (r) => r["new_deaths_avg" + avg]));
    columns.push(number("Cases", (r) => r.cases), number("Deaths", (r) => r.deaths));
    $("#county-table thead tr").replaceChildren(
      ...columns.map(([title, , cls]) => {
        const th = document.createElement("th");
        th.scope = "col";
        th.textContent = title;
        if (cls) th.className = cls;
        return th;
      })
    );
    $("#county-table tbody").replaceChildren(...body.rows.map((r) => tr(columns.map(([, get, cls]) => td(get(r), cls)))));
    $("#county-table-caption").textContent =
      numberFormat.format(body.count) + " " + LEVELS[map.level].nouns + " on " + (body.date || "—") + (body.truncated ? " (list cut short)" : "");
  }

  function tr(cells) {
    const row = document.createElement("tr");
    row.append(...cells);
    return row;
  }

  function td(text, className, colSpan) {
    const cell = document.createElement("td");
    cell.textContent = text;
    if (className) cell.className = className;
    if (colSpan) cell.colSpan = colSpan;
    return cell;
  }

  function setStatus(text, kind) {
    const el = $("#county-status");
    el.textContent = text;
    el.dataset.kind = kind || "";
  }

  // The list a draw needs: the level's last one when it answered the same date and has the
  // measure's columns, else a request (with the averages only when the measure needs them).
  async function list(date, signal) {
    const current = map.levels[map.level];
    const average = MEASURES[map.measure].average;
    if (current.body && current.asked && current.asked.date === date && (current.asked.average || !average)) {
      return { body: current.body, fetched: false };
    }
    const params = new URLSearchParams();
    if (date) params.set("date", date);
    if (average) params.set("avg", String(AVG_DAYS));
    const query = params.toString();
    const body = await getJSON("/api/v1/" + LEVELS[map.level].dataset + "/latest" + (query ? "?" + query : ""), signal);
    return { body, fetched: true, asked: { date, average } };
  }

  // Loads and draws one date ("" = the latest) at the level and in the measure chosen. The
  // figure's data attributes say what is drawn and how long it took, from the request to the
  // painted paths. `request` is this draw's number (map.request when it was asked for); a newer
  // one makes it outdated, and its fetch is aborted.
  async function draw(date, request, signal) {
    const figure = $("#county-map");
    const started = performance.now();
    figure.dataset.state = "loading";
    setStatus("Loading…");
    const nouns = describe();
    const [answer] = await Promise.all([list(date, signal), loadShapes()]);
    if (request !== map.request) return; // a newer draw was asked for meanwhile
    const body = answer.body;
    const current = map.levels[map.level];
    if (answer.fetched) {
      current.body = body;
      current.asked = answer.asked;
    }
    const fetched = performance.now();
    map.body = body;
    const unmapped = shade(body);
    const shaded = performance.now();
    const input = $("#county-date");
    if (body.date) {
      if (!date) {
        input.value = body.date;
        input.max = body.date;
      }
      $("#county-map-date").textContent = body.date;
    } else {
      $("#county-map-date").textContent = "—";
    }
    await painted();
    if (request !== map.request) return;
    const ms = performance.now() - started;
    figure.dataset.date = body.date || "";
    figure.dataset.rows = String(body.count);
    figure.dataset.fetchMs = String(Math.round(fetched - started));
    figure.dataset.shadeMs = String(Math.round(shaded - fetched));
    figure.dataset.renderMs = String(Math.round(ms));
    figure.dataset.fetched = String(answer.fetched);
    figure.dataset.state = "drawn";
    setStatus(
      body.count
        ? numberFormat.format(body.count) + " " + nouns + " (" + numberFormat.format(body.rows.length - unmapped) + " on the map), drawn in " + Math.round(ms) + " ms"
        : "No " + LEVELS[map.level].noun + " data for this date."
    );
    figure.dispatchEvent(new CustomEvent("countymapdrawn", { bubbles: true, detail: { date: body.date, level: map.level, measure: map.measure, ms } }));
  }

  let shapesLoading = null;
  function loadShapes() {
    if (!shapesLoading) {
      const started = performance.now();
      shapesLoading = getJSON("/assets/counties.json").then((shapes) => {
        const fetched = performance.now();
        map.shapes = shapes;
        buildSvg(shapes);
        // How the first draw's time was spent, for a person or a test to look at.
        const figure = $("#county-map");
        figure.dataset.shapesFetchMs = String(Math.round(fetched - started));
        figure.dataset.shapesBuildMs = String(Math.round(performance.now() - fetched));
      });
      shapesLoading.catch(() => (shapesLoading = null));
    }
    return shapesLoading;
  }

  // The date to draw: the one picked, or "" (the latest) while the picker is on the latest date.
  function pickedDate() {
    const input = $("#county-date");
    return input.value && input.value !== input.max ? input.value : "";
  }

  // Draws `date`, aborting the fetch of any draw still under way: only the newest draw's outcome
  // is shown, and an outdated draw's failure (its abort included) is not an error.
  function drawOrReport(date) {
    const request = ++map.request;
    if (map.abort) map.abort.abort();
    const abort = (map.abort = new AbortController());
    return draw(date, request, abort.signal).catch((err) => {
      if (request !== map.request) return;
      $("#county-map").dataset.state = "error";
      setStatus("Could not load the " + LEVELS[map.level].nouns + ": " + err.message, "error");
      pageErrors.push(LEVELS[map.level].nouns + ": " + err.message);
    });
  }

  function start() {
    const levelPicker = $("#map-level");
    const measurePicker = $("#map-measure");
    // A reload may keep the pickers' choices.
    if (LEVELS[levelPicker.value]) map.level = levelPicker.value;
    if (MEASURES[measurePicker.value]) map.measure = measurePicker.value;
    describe();
    const wrap = $("#county-map .map-wrap");
    // One listener for every path: hover shows a county or state, a tap (or click) pins it until
    // the next tap elsewhere.
    wrap.addEventListener("pointermove", (e) => {
      const fips = e.target.dataset && e.target.dataset.fips;
      if (fips && !map.pinned) showTip(fips, e);
      else if (!fips) hideTip();
    });
    wrap.addEventListener("pointerleave", hideTip);
    wrap.addEventListener("click", (e) => {
      const fips = e.target.dataset && e.target.dataset.fips;
      map.pinned = fips && map.pinned !== fips ? fips : null;
      if (map.pinned) showTip(fips, e);
      else hideTip();
    });
    $("#county-controls").addEventListener("submit", (e) => e.preventDefault());
    $("#county-date").addEventListener("change", (e) => drawOrReport(e.target.value));
    levelPicker.addEventListener("change", () => {
      map.level = levelPicker.value;
      map.pinned = null;
      hideTip();
      drawOrReport(pickedDate());
    });
    measurePicker.addEventListener("change", () => {
      map.measure = measurePicker.value;
      drawOrReport(pickedDate());
    });
    $("#county-table-details").addEventListener("toggle", (e) => {
      if (e.target.open) renderTable();
    });
    // A state or county run landed (app.js relays the live event): that level's list is
    // outdated; when it is the level shown, the date picked is drawn again, or, while the map
    // follows the latest date, the new latest.
    window.addEventListener("covid:dataset-loaded", (e) => {
      const dataset = e.detail && e.detail.dataset;
      const landed = Object.keys(LEVELS).find((name) => LEVELS[name].dataset === dataset);
      if (!landed) return;
      map.levels[landed].body = null;
      map.levels[landed].asked = null;
      if (landed === map.level) drawOrReport(pickedDate());
    });
    drawOrReport("");
  }

  start();
})();
