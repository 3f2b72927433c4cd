// The "Compare states and counties" section: up to six states or counties, picked from one
// searchable list (a <datalist> filled from /api/v1/{states,counties}/latest), drawn as one uPlot
// chart with a series each, for the measure chosen (new cases, their 7-day average, cumulative
// cases, and the same for deaths). A state or county run that lands (app.js relays it as
// `covid:dataset-loaded`) reads that dataset's picks and list again.
// The figure's data attributes say what is drawn, for a person or the browser test.
// Plain JavaScript, no build step.
(function () {
  "use strict";

  const pageErrors = (window.__dashboardErrors = window.__dashboardErrors || []);
  const MAX_PICKS = 6;
  const CHART_HEIGHT = 320;
  // Six colours told apart by people with the common colour-vision deficiencies (Okabe–Ito);
  // chips use the classes `c0`…`c5` of app.css, which hold the same colours.
  const COLORS = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9"];
  // A measure: the API field, the trailing average asked for (none: the plain value) and how the
  // chart names it.
  const MEASURES = {
    new_cases: { field: "new_cases", label: "New cases per day" },
    new_cases_avg7: { field: "new_cases", avg: 7, label: "New cases per day, 7-day average" },
    cases: { field: "cases", label: "Cumulative cases" },
    new_deaths: { field: "new_deaths", label: "New deaths per day" },
    new_deaths_avg7: { field: "new_deaths", avg: 7, label: "New deaths per day, 7-day average" },
    deaths: { field: "deaths", label: "Cumulative deaths" },
  };
  const DATASETS = ["states", "counties"];
  // The date axis' tick spacings, in seconds: a day, a week, a fortnight, about a month… a year.
  const DAY_STEPS = [1, 2, 7, 14, 30, 91, 182, 365].map((days) => days * 86400);

  const $ = (selector) => document.querySelector(selector);
  const numberFormat = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 });
  const fmt = (v) => (v == null ? "not reported" : numberFormat.format(v));
  const dayToSeconds = (date) => Date.parse(date + "T00:00:00Z") / 1000;
  const secondsToDay = (s) => new Date(s * 1000).toISOString().slice(0, 10);

  const compare = {
    keys: { states: [], counties: [] }, // every key of each list, as picks are made of
    byId: new Map(), // "Texas" / "Harris, Texas" -> its key
    listsLoaded: new Set(), // the datasets whose list has arrived
    picks: [], // { id, dataset, state, county, color }, in the order picked
    series: new Map(), // pick id -> { measure, dates, values, stale }
    errors: new Map(), // pick id -> why its series could not be read
    chart: null,
    request: 0, // the newest refresh's number
    abort: null, // the AbortController of the newest refresh's fetches
  };
  window.covidCompare = compare;

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

  function setStatus(text, kind) {
    const el = $("#compare-status");
    el.textContent = text;
    el.dataset.kind = kind || "";
  }

  function report(text) {
    setStatus(text, "error");
    pageErrors.push("compare: " + text);
  }

  // ---- the picker ----------------------------------------------------------------------------

  // A key as the lists name it: a state by its name, a county as "County, State" (NYT's
  // spelling, so "New York City, New York" and "Unknown, Texas" are found as people write them).
  function keyOf(dataset, row) {
    const county = dataset === "counties" ? row.county : null;
    return { dataset, state: row.state, county, id: county == null ? row.state : county + ", " + row.state };
  }

  async function loadList(dataset) {
    const body = await getJSON("/api/v1/" + dataset + "/latest");
    compare.keys[dataset] = body.rows.map((row) => keyOf(dataset, row));
    compare.listsLoaded.add(dataset);
    fillOptions();
  }

  function fillOptions() {
    compare.byId.clear();
    const options = [];
    for (const dataset of DATASETS) {
      for (const key of compare.keys[dataset]) {
        compare.byId.set(key.id, key);
        const option = document.createElement("option");
        option.value = key.id;
        option.label = dataset === "states" ? "State" : "County";
        options.push(option);
      }
    }
    $("#compare-options").replaceChildren(...options);
  }

  function allKeys() {
    return compare.keys.states.concat(compare.keys.counties);
  }

  // What the typed text names: the key spelled so (any case), else the one key containing it.
  function resolve(typed) {
    const text = typed.trim();
    if (!text) return { error: "Type a state or a county (as “County, State”) first." };
    const exact = compare.byId.get(text);
    if (exact) return { key: exact };
    const lower = text.toLowerCase();
    const keys = allKeys();
    const sameWord = keys.filter((k) => k.id.toLowerCase() === lower);
    if (sameWord.length === 1) return { key: sameWord[0] };
    const matches = keys.filter((k) => k.id.toLowerCase().includes(lower));
    if (matches.length === 1) return { key: matches[0] };
    if (compare.listsLoaded.size < DATASETS.length) return { error: "The lists of states and counties are still loading." };
    if (!matches.length) return { error: "No state or county is called “" + text + "”." };
    return { error: numberFormat.format(matches.length) + " states and counties match “" + text + "”: type more or choose one from the list." };
  }

  function add(key) {
    if (compare.picks.some((p) => p.id === key.id)) {
      setStatus(key.id + " is compared already.", "notice");
      return false;
    }
    if (compare.picks.length >= MAX_PICKS) {
      setStatus("At most " + MAX_PICKS + " are compared at once: remove one first.", "error");
      return false;
    }
    const used = new Set(compare.picks.map((p) => p.color));
    const color = COLORS.findIndex((_, i) => !used.has(i));
    compare.picks.push(Object.assign({ color }, key));
    renderChips();
    refresh();
    return true;
  }

  function remove(id) {
    const at = compare.picks.findIndex((p) => p.id === id);
    if (at < 0) return;
    compare.picks.splice(at, 1);
    compare.series.delete(id);
    compare.errors.delete(id);
    setStatus("Removed " + id + ".");
    renderChips();
    // Keyboard users stay where they were: on the next chip's button, else the search box.
    const buttons = document.querySelectorAll("#compare-picks button.remove");
    (buttons[Math.min(at, buttons.length - 1)] || $("#compare-search")).focus();
    refresh();
  }

  function choose(typed) {
    const { key, error } = resolve(typed);
    if (!key) {
      setStatus(error, "error");
      return;
    }
    if (add(key)) {
      $("#compare-search").value = "";
      setStatus("Added " + key.id + ".");
    }
  }

  // One chip per pick: its colour, its name, its last value for the measure, a remove button.
  function renderChips() {
    const measure = MEASURES[$("#compare-measure").value];
    const chips = compare.picks.map((pick) => {
      const li = document.createElement("li");
      li.className = "chip";
      li.dataset.id = pick.id;
      li.dataset.dataset = pick.dataset;
      const swatch = document.createElement("span");
      swatch.className = "swatch c" + pick.color;
      swatch.setAttribute("aria-hidden", "true");
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = pick.id;
      const value = document.createElement("span");
      value.className = "value";
      const series = compare.series.get(pick.id);
      const error = compare.errors.get(pick.id);
      if (error) value.textContent = "could not be read";
      else if (series && series.dates.length)
        value.textContent = fmt(series.values[series.values.length - 1]) + " on " + series.dates[series.dates.length - 1];
      else if (series) value.textContent = "no days";
      const button = document.createElement("button");
      button.type = "button";
      button.className = "remove";
      button.textContent = "×";
      button.title = "Remove " + pick.id;
      button.setAttribute("aria-label", "Remove " + pick.id + " from the comparison");
      button.addEventListener("click", () => remove(pick.id));
      li.append(swatch, name, value, button);
      return li;
    });
    $("#compare-picks").replaceChildren(...chips);
    $("#compare-picks").setAttribute("aria-label", "Compared (" + compare.picks.length + " of at most " + MAX_PICKS + ", " + measure.label.toLowerCase() + ")");
  }

  // ---- the series ----------------------------------------------------------------------------

  function seriesUrl(pick, measure) {
    const params = new URLSearchParams();
    params.set("state", pick.state);
    if (pick.county != null) params.set("county", pick.county);
    params.set("fields", measure.field);
    if (measure.avg) params.set("avg", String(measure.avg));
    return "/api/v1/" + pick.dataset + "/daily?" + params.toString();
  }

  async function loadSeries(pick, name, signal) {
    const measure = MEASURES[name];
    const column = measure.avg ? measure.field + "_avg" + measure.avg : measure.field;
    const body = await getJSON(seriesUrl(pick, measure), signal);
    return {
      measure: name,
      dates: body.rows.map((r) => r.date),
      values: body.rows.map((r) => (r[column] === undefined ? null : r[column])),
      truncated: body.truncated,
      stale: false,
    };
  }

  // Reads what the chart lacks (a new pick, another measure, a dataset that changed), then
  // draws. Only the newest refresh draws; an older one's fetches are aborted.
  async function refresh() {
    const request = ++compare.request;
    if (compare.abort) compare.abort.abort();
    const abort = (compare.abort = new AbortController());
    const name = $("#compare-measure").value;
    const figure = $("#compare-chart");
    const wanted = compare.picks.filter((p) => {
      const s = compare.series.get(p.id);
      return !s || s.stale || s.measure !== name;
    });
    if (wanted.length) figure.dataset.state = "loading";
    const outcomes = await Promise.allSettled(wanted.map((p) => loadSeries(p, name, abort.signal)));
    if (request !== compare.request) return; // a newer refresh is under way
    const failed = [];
    outcomes.forEach((outcome, i) => {
      const pick = wanted[i];
      if (outcome.status === "fulfilled") {
        compare.series.set(pick.id, outcome.value);
        compare.errors.delete(pick.id);
      } else {
        compare.series.delete(pick.id);
        compare.errors.set(pick.id, outcome.reason.message);
        failed.push(pick.id + ": " + outcome.reason.message);
      }
    });
    draw(name);
    renderChips();
    if (failed.length) report("Could not load " + failed.join("; "));
  }

  // ---- the chart -----------------------------------------------------------------------------

  function destroyChart() {
    if (compare.chart) {
      compare.chart.destroy();
      compare.chart = null;
    }
  }

  function draw(name) {
    const measure = MEASURES[name];
    const figure = $("#compare-chart");
    const plot = figure.querySelector(".plot");
    destroyChart();
    const drawn = compare.picks.filter((p) => compare.series.has(p.id));
    figure.dataset.measure = name;
    figure.dataset.series = drawn.map((p) => p.id).join("|");
    figure.dataset.lastValues = JSON.stringify(drawn.map((p) => lastOf(compare.series.get(p.id)).value));
    $("#compare-empty").hidden = compare.picks.length > 0;
    if (!drawn.length) {
      plot.hidden = true;
      figure.dataset.points = "0";
      figure.dataset.lastDate = "";
      figure.dataset.state = compare.picks.length ? "error" : "empty";
      $("#compare-caption").textContent = measure.label;
      return;
    }
    plot.hidden = false;

    // One x axis for every pick: the union of their dates; a pick without a date has a gap.
    const dates = Array.from(new Set(drawn.flatMap((p) => compare.series.get(p.id).dates))).sort();
    const at = new Map(dates.map((d, i) => [d, i]));
    const data = [dates.map(dayToSeconds)];
    const series = [{ label: "Date", value: (u, ts) => (ts == null ? "—" : secondsToDay(ts)) }];
    for (const pick of drawn) {
      const s = compare.series.get(pick.id);
      const values = new Array(dates.length).fill(null);
      s.dates.forEach((d, i) => (values[at.get(d)] = s.values[i]));
      data.push(values);
      series.push({
        label: pick.id,
        stroke: COLORS[pick.color],
        width: 2,
        // uPlot's default shows the points while there is room for them: a day alone between
        // days not reported stays visible.
        value: (u, v, seriesIndex, index) => (index == null ? "—" : fmt(v)),
      });
    }
    const width = Math.max(320, plot.clientWidth || figure.clientWidth - 24);
    compare.chart = new uPlot(
      {
        width,
        height: CHART_HEIGHT,
        tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
        scales: {
          x: { time: true },
          y: { range: (u, min, max) => (min == null ? [0, 1] : [Math.min(0, min), max > 0 ? max * 1.05 : 1]) },
        },
        // Whole days on the date axis, however few of them there are.
        axes: [{ incrs: DAY_STEPS }, { size: 64, values: (u, splits) => splits.map((v) => numberFormat.format(v)) }],
        series,
      },
      data,
      plot
    );

    const n = dates.length;
    figure.dataset.points = String(n);
    figure.dataset.lastDate = dates[n - 1];
    figure.dataset.state = "drawn";
    let detail = drawn.length + (drawn.length === 1 ? " place, " : " places, ") + numberFormat.format(n) + " days, " + dates[0] + " to " + dates[n - 1];
    if (drawn.some((p) => compare.series.get(p.id).truncated)) detail += "; some series cut short";
    $("#compare-caption").replaceChildren(
      document.createTextNode(measure.label + " "),
      Object.assign(document.createElement("span"), { className: "detail", textContent: "— " + detail })
    );
    plot.setAttribute("aria-label", measure.label + " for " + drawn.map((p) => p.id).join(", ") + ": " + detail);
  }

  // A series' last day and its value there (null: not reported).
  function lastOf(series) {
    const n = series.dates.length;
    return n ? { date: series.dates[n - 1], value: series.values[n - 1] } : { date: null, value: null };
  }

  // ---- wiring --------------------------------------------------------------------------------

  function start() {
    const form = $("#compare-controls");
    const search = $("#compare-search");
    // Enter in the box or the Add button: the key typed, or the one key containing the text.
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      choose(search.value);
    });
    // An option chosen from the list (mouse, or arrows and Enter) is added at once; plain typing
    // is not, so typing "New York" on the way to "New York City, New York" adds nothing.
    search.addEventListener("input", (e) => {
      if (e.inputType && e.inputType !== "insertReplacementText") return;
      if (compare.byId.has(search.value)) choose(search.value);
    });
    $("#compare-measure").addEventListener("change", () => refresh());
    let pending = false;
    window.addEventListener("resize", () => {
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => {
        pending = false;
        const plot = $("#compare-chart .plot");
        if (compare.chart && plot.clientWidth) compare.chart.setSize({ width: Math.max(320, plot.clientWidth), height: CHART_HEIGHT });
      });
    });
    // A state or county run landed: its list may hold new keys, and its picks new values.
    window.addEventListener("covid:dataset-loaded", (e) => {
      const dataset = e.detail && e.detail.dataset;
      if (!DATASETS.includes(dataset)) return;
      loadList(dataset).catch((err) => report("Could not load the list of " + dataset + ": " + err.message));
      let changed = false;
      for (const pick of compare.picks) {
        const s = compare.series.get(pick.id);
        if (pick.dataset === dataset && s) {
          s.stale = true;
          changed = true;
        }
      }
      if (changed) refresh();
    });

    renderChips();
    draw($("#compare-measure").value);
    setStatus("Loading the states and counties…");
    Promise.allSettled(DATASETS.map(loadList)).then((outcomes) => {
      const failed = outcomes
        .map((o, i) => (o.status === "rejected" ? "the list of " + DATASETS[i] + " (" + o.reason.message + ")" : null))
        .filter(Boolean);
      if (failed.length) report("Could not load " + failed.join(" or "));
      else
        setStatus(
          numberFormat.format(compare.keys.states.length) + " states and " + numberFormat.format(compare.keys.counties.length) + " counties to choose from."
        );
      $("#compare-chart").dataset.lists = failed.length ? "error" : "loaded";
    });
  }

  start();
})();
