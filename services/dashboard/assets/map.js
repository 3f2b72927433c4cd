// The "Counties" section: every county's new cases on one date (/api/v1/counties/latest) as a
// choropleth on a log scale. The geometry (assets/counties.json, made by
// scripts/county-shapes.sh) is SVG path data already projected, one path per 5-digit FIPS code:
// the paths are built once, and a date only changes their classes (the colours are in app.css).
// The figure's data attributes say what is drawn and how long each part took.
// Plain JavaScript, no build step.
(function () {
  "use strict";

  const pageErrors = (window.__dashboardErrors = window.__dashboardErrors || []);
  // New York City is reported as one "county" without a FIPS code; its boroughs are shaded with it.
  const NYC = { state: "New York", county: "New York City", boroughs: ["36005", "36047", "36061", "36081", "36085"] };
  // Class i holds new_cases in [BREAKS[i-1], BREAKS[i]) (q0: zero or fewer, as after corrections);
  // half-decade steps, so the colours follow a log scale.
  const BREAKS = [1, 10, 30, 100, 300, 1000, 3000];
  const LEGEND = ["0 or fewer", "1–9", "10–29", "30–99", "100–299", "300–999", "1,000–2,999", "3,000 or more"];

  const $ = (selector) => document.querySelector(selector);
  const numberFormat = new Intl.NumberFormat("en-US");
  const fmt = (v) => (v == null ? "not reported" : numberFormat.format(v));

  const map = {
    shapes: null, // the geometry asset, once loaded
    paths: new Map(), // fips -> <path>
    byFips: new Map(), // fips -> the row shading it (NYC's for its boroughs)
    body: null, // the last list
    request: 0, // the newest draw's number
    abort: null, // the AbortController of the newest draw's fetch
    pinned: null, // the county a tap selected
  };
  window.covidCountyMap = map;

  // The class of a value: "qn" not reported, "q0"… "q7" by BREAKS.
  function bin(v) {
    if (v == null) return "qn";
    let i = 0;
    while (i < BREAKS.length && v >= BREAKS[i]) i++;
    return "q" + i;
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
    const parts = [];
    for (const [fips, d] of Object.entries(shapes.counties)) {
      if (/^\d{5}$/.test(fips) && pathData.test(d)) parts.push('<path class="qx" data-fips="' + fips + '" d="' + d + '"/>');
    }
    const extra = (cls, d) => (pathData.test(d) ? '<path class="' + cls + '" d="' + d + '"/>' : "");
    const size = Number(shapes.width) + " " + Number(shapes.height);
    $("#county-map .map-wrap").insertAdjacentHTML(
      "afterbegin",
      '<svg viewBox="0 0 ' + size + '" role="img" aria-labelledby="county-map-caption"><g class="counties">' +
        parts.join("") +
        "</g>" +
        extra("states", shapes.states) +
        extra("nation", shapes.nation) +
        '<path class="focus" id="county-focus"/></svg>'
    );
    for (const path of document.querySelectorAll("#county-map .counties path")) map.paths.set(path.dataset.fips, path);
  }

  function renderLegend() {
    const legend = $("#county-legend");
    const items = LEGEND.map((label, i) => ["q" + i, label]).concat([["qn", "not reported"], ["qx", "no row for the date"]]);
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

  // Shades every path from the list; rows without a FIPS code go to the list beside the map.
  function shade(body) {
    map.byFips.clear();
    const unmapped = [];
    for (const row of body.rows) {
      if (row.fips && map.paths.has(row.fips)) map.byFips.set(row.fips, row);
      else unmapped.push(row);
      if (row.state === NYC.state && row.county === NYC.county && !row.fips) {
        for (const fips of NYC.boroughs) if (!map.byFips.has(fips)) map.byFips.set(fips, row);
      }
    }
    for (const [fips, path] of map.paths) {
      const row = map.byFips.get(fips);
      path.setAttribute("class", row ? bin(row.new_cases) : "qx");
    }
    renderUnmapped(unmapped);
    if (map.pinned) showTip(map.pinned);
    const details = $("#county-table-details");
    if (details.open) renderTable();
    else map.tableFor = null;
    return unmapped.length;
  }

  function tipText(fips) {
    const row = map.byFips.get(fips);
    const name = (map.shapes.names && map.shapes.names[fips]) || "FIPS " + fips;
    if (!row) return name + " (FIPS " + fips + ")\nNo row for " + (map.body ? map.body.date : "this date");
    const title =
      row.fips === fips ? row.county + ", " + row.state : row.county + " (" + name + "), " + row.state;
    return (
      title +
      "\nNew cases: " + fmt(row.new_cases) +
      "\nNew deaths: " + fmt(row.new_deaths) +
      "\nCases: " + fmt(row.cases) +
      "\nDeaths: " + fmt(row.deaths) +
      "\n" + map.body.date
    );
  }

  function showTip(fips, event) {
    const tip = $("#county-tip");
    const path = map.paths.get(fips);
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
      const name = r.county + ", " + r.state + (r.county === NYC.county && r.state === NYC.state ? " (shaded on its boroughs)" : "");
      tbody.append(tr([td(name), td(fmt(r.new_cases), "num"), td(fmt(r.cases), "num")]));
    }
  }

  // The whole list as a table, for screen readers and anyone who wants the numbers; built only
  // when opened (3,000 rows would slow the map down).
  function renderTable() {
    const body = map.body;
    if (!body || map.tableFor === body) return;
    map.tableFor = body;
    const tbody = $("#county-table tbody");
    const rows = body.rows.map((r) =>
      tr([
        td(r.state),
        td(r.county),
        td(r.fips || ""),
        td(fmt(r.new_cases), "num"),
        td(fmt(r.new_deaths), "num"),
        td(fmt(r.cases), "num"),
        td(fmt(r.deaths), "num"),
      ])
    );
    tbody.replaceChildren(...rows);
    $("#county-table-caption").textContent =
      numberFormat.format(body.count) + " counties on " + (body.date || "—") + (body.truncated ? " (list cut short)" : "");
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

  // Loads and draws one date ("" = the latest). The figure's data attributes say what is drawn
  // and how long it took, from the request to the painted paths.
  // `request` is this draw's number (map.request when it was asked for); a newer one makes it
  // outdated, and its fetch is aborted.
  async function draw(date, request, signal) {
    const figure = $("#county-map");
    const started = performance.now();
    figure.dataset.state = "loading";
    setStatus("Loading…");
    const url = "/api/v1/counties/latest" + (date ? "?date=" + encodeURIComponent(date) : "");
    const [body] = await Promise.all([getJSON(url, signal), loadShapes()]);
    if (request !== map.request) return; // a newer date was asked for meanwhile
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
    figure.dataset.state = "drawn";
    setStatus(
      body.count
        ? numberFormat.format(body.count) + " counties (" + numberFormat.format(body.rows.length - unmapped) + " on the map), drawn in " + Math.round(ms) + " ms"
        : "No county data for this date."
    );
    figure.dispatchEvent(new CustomEvent("countymapdrawn", { bubbles: true, detail: { date: body.date, ms } }));
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

  // Draws `date`, aborting the fetch of any draw still under way: only the newest draw's outcome
  // is shown, and an outdated draw's failure (its abort included) is not an error.
  function drawOrReport(date) {
    const request = ++map.request;
    if (map.abort) map.abort.abort();
    const abort = (map.abort = new AbortController());
    return draw(date, request, abort.signal).catch((err) => {
      if (request !== map.request) return;
      $("#county-map").dataset.state = "error";
      setStatus("Could not load the counties: " + err.message, "error");
      pageErrors.push("counties: " + err.message);
    });
  }

  function start() {
    renderLegend();
    const wrap = $("#county-map .map-wrap");
    // One listener for every path: hover shows a county, a tap (or click) pins it until the
    // next tap elsewhere.
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
    $("#county-table-details").addEventListener("toggle", (e) => {
      if (e.target.open) renderTable();
    });
    // A county run landed (app.js relays the live event): the date picked is drawn again, or,
    // while the map follows the latest date, the new latest.
    window.addEventListener("covid:dataset-loaded", (e) => {
      if (!e.detail || e.detail.dataset !== "counties") return;
      const input = $("#county-date");
      drawOrReport(input.value && input.value !== input.max ? input.value : "");
    });
    drawOrReport("");
  }

  start();
})();
