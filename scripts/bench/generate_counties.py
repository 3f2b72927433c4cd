#!/usr/bin/env python3
"""
generate_counties.py -- a deterministic synthetic NYT `us-counties` history for the issue 12
county benchmark (scripts/bench-counties.sh), at the real final size and shape.

    generate_counties.py OUT_DIR [--counties 3250] [--dates 780] [--seed 1]
                         [--revisions 50] [--recent-days 30]

Writes
  OUT_DIR/v1/us-counties-<year>.csv   one file per calendar year present (2020, 2021, ...)
  OUT_DIR/v1/us-counties-recent.csv   the last `--recent-days` dates, overlapping the last year's
                                      file with identical values (as upstream)
  OUT_DIR/v2/...                      v1 plus one new date for every county present on v1's last
                                      date, plus `--revisions` revised values (cases or deaths) on
                                      earlier dates of the current year; as upstream, only the
                                      current year's file and the recent file change (the other
                                      years' files are hard links to v1's)
  OUT_DIR/manifest.json               the parameters, rows per file, the revisions, and the counts a
                                      correct v1 -> v2 delta must report

Shape (`date,county,state,fips,cases,deaths`, the header upstream uses):
  - dates from 2020-01-21, one per day; rows of a date sorted by state, then county;
  - counties appear progressively (one on the first day, a few in February 2020, most in March to
    May 2020, a tail to late 2020) and stay on every later date;
  - real state and territory names with their FIPS codes, counties spread over them roughly as the
    real ones are; generated county names ("County 0421", a few real ones with non-ASCII letters);
    fips = 5 digits, except `New York City` and each state's `Unknown` county (empty);
  - Puerto Rico's municipalities have empty deaths (NULL) on every date, as upstream;
  - cumulative counts from epidemic waves per county (Poisson), mostly rising, with occasional
    small downward corrections (more in `Unknown` counties) and weekend non-reporting for some
    counties from mid-2021.

Same arguments => byte-identical files. Needs numpy.
"""

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import time

import numpy as np

HEADER = "date,county,state,fips,cases,deaths\n"
START = dt.date(2020, 1, 21)

# (state, FIPS code, roughly its real number of counties / county equivalents in the NYT file)
STATES = [
    ("Alabama", "01", 67), ("Alaska", "02", 29), ("Arizona", "04", 15), ("Arkansas", "05", 75),
    ("California", "06", 58), ("Colorado", "08", 64), ("Connecticut", "09", 8),
    ("Delaware", "10", 3), ("District of Columbia", "11", 1), ("Florida", "12", 67),
    ("Georgia", "13", 159), ("Guam", "66", 1), ("Hawaii", "15", 5), ("Idaho", "16", 44),
    ("Illinois", "17", 102), ("Indiana", "18", 92), ("Iowa", "19", 99), ("Kansas", "20", 105),
    ("Kentucky", "21", 120), ("Louisiana", "22", 64), ("Maine", "23", 16), ("Maryland", "24", 24),
    ("Massachusetts", "25", 14), ("Michigan", "26", 83), ("Minnesota", "27", 87),
    ("Mississippi", "28", 82), ("Missouri", "29", 115), ("Montana", "30", 56),
    ("Nebraska", "31", 93), ("Nevada", "32", 17), ("New Hampshire", "33", 10),
    ("New Jersey", "34", 21), ("New Mexico", "35", 33), ("New York", "36", 58),
    ("North Carolina", "37", 100), ("North Dakota", "38", 53),
    ("Northern Mariana Islands", "69", 2), ("Ohio", "39", 88), ("Oklahoma", "40", 77),
    ("Oregon", "41", 36), ("Pennsylvania", "42", 67), ("Puerto Rico", "72", 78),
    ("Rhode Island", "44", 5), ("South Carolina", "45", 46), ("South Dakota", "46", 66),
    ("Tennessee", "47", 95), ("Texas", "48", 254), ("Utah", "49", 29), ("Vermont", "50", 14),
    ("Virgin Islands", "78", 3), ("Virginia", "51", 133), ("Washington", "53", 39),
    ("West Virginia", "54", 55), ("Wisconsin", "55", 72), ("Wyoming", "56", 23),
]
NO_UNKNOWN = {"District of Columbia", "Guam"}
# A few real names, so that non-ASCII text and punctuation are exercised.
REAL_NAMES = {
    "New Mexico": "Doña Ana", "Puerto Rico": "Bayamón", "Missouri": "St. Louis city",
    "Alaska": "Yukon-Koyukuk Census Area", "Louisiana": "St. John the Baptist",
    "Montana": "Lewis and Clark", "District of Columbia": "District of Columbia",
}
# Epidemic waves: (centre day from 2020-01-21, width in days, relative height)
WAVES = [(80, 18, 0.6), (185, 25, 0.9), (350, 40, 2.0), (590, 35, 1.2), (722, 18, 4.5),
         (900, 40, 0.8), (1060, 30, 0.6)]


def build_counties(n_total, rng):
    """The county list: [(state, county, fips or '', deaths_null)], sorted by (state, county)."""
    n_unknown = sum(1 for s, _, _ in STATES if s not in NO_UNKNOWN)
    named = n_total - n_unknown
    if named < len(STATES):
        sys.exit(f"--counties must be at least {len(STATES) + n_unknown}")
    weights = np.array([w for _, _, w in STATES], dtype=float)
    share = weights / weights.sum() * named
    counts = np.maximum(1, np.floor(share).astype(int))
    # largest remainders get the rest (or the largest states give back the excess)
    order = np.argsort(-(share - np.floor(share)), kind="stable")
    i = 0
    while counts.sum() < named:
        counts[order[i % len(order)]] += 1
        i += 1
    while counts.sum() > named:
        counts[int(np.argmax(counts))] -= 1
    counties = []
    seq = 0
    for (state, sfips, _), n in zip(STATES, counts):
        if n > 499:
            sys.exit("too many counties for one state (5-digit fips); lower --counties")
        for j in range(n):
            seq += 1
            code = f"{sfips}{2 * j + 1:03d}"
            name = f"County {seq:04d}"
            fips = code
            if j == 0 and state in REAL_NAMES:
                name = REAL_NAMES[state]
            if state == "New York" and j == 0:
                name, fips = "New York City", ""
            counties.append((state, name, fips, state == "Puerto Rico"))
        if state not in NO_UNKNOWN:
            counties.append((state, "Unknown", "", False))
    counties.sort(key=lambda c: (c[0], c[1]))
    return counties


def simulate(counties, n_dates, rng):
    """Cumulative cases and deaths, shape (counties, n_dates), and each county's first date."""
    n = len(counties)
    names = [c[1] for c in counties]
    unknown = np.array([nm == "Unknown" for nm in names])
    nyc = np.array([nm == "New York City" for nm in names])

    # First date of each county: one on day 0, ~15 in February 2020, most in March-May 2020.
    appear = 40 + np.exp(rng.normal(np.log(30), 0.65, n))
    early = rng.random(n) < 15 / n
    appear[early] = rng.uniform(1, 40, early.sum())
    appear[unknown] = 60 + np.exp(rng.normal(np.log(60), 0.6, unknown.sum()))
    appear[nyc] = 40
    appear = np.minimum(appear, 330).astype(np.int64)
    appear[int(np.argmin(appear))] = 0
    appear = np.minimum(appear, n_dates - 1)

    pop = np.exp(rng.normal(np.log(25_000), 1.2, n))
    pop[nyc] = 8_300_000
    pop[unknown] = pop[unknown] * 0.02
    t = np.arange(n_dates, dtype=np.float64)
    lam = np.zeros((n, n_dates))
    for centre, width, height in WAVES:
        amp = height * np.exp(rng.normal(0, 0.45, n))
        shift = rng.normal(0, 8, n)
        lam += amp[:, None] * np.exp(-0.5 * ((t[None, :] - centre - shift[:, None]) / width) ** 2)
    lam += 0.02  # background
    total = lam[:, : min(n_dates, 1158)].sum(axis=1, keepdims=True)
    lam *= (0.30 * pop)[:, None] / total  # ≈30 % of the population over the whole history

    present = t[None, :] >= appear[:, None]
    new_cases = rng.poisson(lam * present)
    new_cases[np.arange(n), appear] += 1  # a county appears with at least one case
    cfr = np.interp(t, [0, 150, 700, 1158], [0.05, 0.02, 0.006, 0.004])
    lam_d = np.zeros_like(lam)
    lam_d[:, 14:] = lam[:, :-14] * cfr[None, 14:]
    new_deaths = rng.poisson(lam_d * present)

    # Occasional small downward corrections (more in Unknown counties).
    p_fix = np.where(unknown, 0.02, 0.002)[:, None]
    fix = (rng.random((n, n_dates)) < p_fix) & present
    new_cases[fix] = -rng.integers(1, 25, fix.sum())
    fix_d = (rng.random((n, n_dates)) < 0.0005) & present
    new_deaths[fix_d] = -rng.integers(1, 3, fix_d.sum())

    # Weekend non-reporting for a quarter of the counties from mid-2021: Saturday and Sunday
    # reported on Monday.
    lazy = rng.random(n) < 0.25
    weekday = np.array([(START + dt.timedelta(days=int(d))).weekday() for d in range(n_dates)])
    for d in range(520, n_dates):
        if weekday[d] in (5, 6):
            monday = d + (7 - weekday[d])
            for arr in (new_cases, new_deaths):
                if monday < n_dates:
                    arr[lazy, monday] += arr[lazy, d]
                arr[lazy, d] = 0

    cases = np.maximum(np.cumsum(new_cases, axis=1), 0)
    deaths = np.maximum(np.cumsum(new_deaths, axis=1), 0)
    return cases, deaths, appear


class Renderer:
    """Fast CSV text for (county, date) cells: per-county prefixes, vectorised number strings."""

    def __init__(self, counties, n_dates, cases, deaths):
        self.prefix = [
            f",{c},{s},{f}," for s, c, f, _ in counties
        ]
        self.dates = [(START + dt.timedelta(days=d)).isoformat() for d in range(n_dates)]
        self.null_deaths = np.array([c[3] for c in counties])
        self.cases, self.deaths = cases, deaths

    def block(self, d, present):
        """The lines of date `d` for the counties in `present` (sorted indices)."""
        cs = self.cases[present, d].astype(str).tolist()
        ds = self.deaths[present, d].astype(str)
        ds[self.null_deaths[present]] = ""
        ds = ds.tolist()
        day, pre = self.dates[d], self.prefix
        return "".join([day + pre[c] + x + "," + y + "\n"
                        for c, x, y in zip(present.tolist(), cs, ds)])


def write_version(out, renderer, appear, n_dates, recent_days, skip_years=(), link_from=None):
    """Writes a version's year files and recent file; returns {file name: rows}."""
    os.makedirs(out, exist_ok=True)
    years = {}
    for d in range(n_dates):
        years.setdefault((START + dt.timedelta(days=d)).year, []).append(d)
    rows = {}
    cache = {}

    def lines(d):
        if d not in cache:
            present = np.nonzero(appear <= d)[0]
            cache[d] = (renderer.block(d, present), len(present))
        return cache[d]

    for year, days in years.items():
        name = f"us-counties-{year}.csv"
        path = os.path.join(out, name)
        if year in skip_years and link_from is not None:
            src = os.path.join(link_from, name)
            if os.path.exists(path):
                os.remove(path)
            try:
                os.link(src, path)
            except OSError:
                shutil.copyfile(src, path)
            with open(src, "rb") as f:
                rows[name] = sum(1 for _ in f) - 1
            continue
        n = 0
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(HEADER)
            for d in days:
                text, k = lines(d) if d >= n_dates - recent_days else (None, None)
                if text is None:
                    present = np.nonzero(appear <= d)[0]
                    text, k = renderer.block(d, present), len(present)
                f.write(text)
                n += k
        rows[name] = n
    n = 0
    with open(os.path.join(out, "us-counties-recent.csv"), "w", encoding="utf-8", newline="") as f:
        f.write(HEADER)
        for d in range(max(0, n_dates - recent_days), n_dates):
            text, k = lines(d)
            f.write(text)
            n += k
    rows["us-counties-recent.csv"] = n
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--counties", type=int, default=3250)
    ap.add_argument("--dates", type=int, default=780, help="dates in v1 (v2 has one more)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--revisions", type=int, default=50)
    ap.add_argument("--recent-days", type=int, default=30)
    args = ap.parse_args(argv)
    if args.dates < 2:
        sys.exit("--dates must be at least 2")

    t0 = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    counties = build_counties(args.counties, rng)
    n1 = args.dates
    n2 = n1 + 1
    cases, deaths, appear = simulate(counties, n2, rng)
    null_deaths = np.array([c[3] for c in counties])

    # v2's revisions: distinct (county, date) cells on earlier dates of v1's current year.
    last_year = (START + dt.timedelta(days=n1 - 1)).year
    first_of_year = max(0, (dt.date(last_year, 1, 1) - START).days)
    cells = set()
    revisions = []
    cases2, deaths2 = cases.copy(), deaths.copy()
    attempts = 0
    while len(revisions) < args.revisions and attempts < 100 * max(1, args.revisions):
        attempts += 1
        d = int(rng.integers(first_of_year, n1))
        c = int(rng.integers(0, len(counties)))
        if appear[c] > d or (c, d) in cells:
            continue
        field = "deaths" if (rng.random() < 0.3 and not null_deaths[c]) else "cases"
        arr = cases2 if field == "cases" else deaths2
        old = int(arr[c, d])
        step = int(rng.integers(1, max(3, old // 50) + 1))
        new = old + step if (old < step or rng.random() < 0.6) else old - step
        if new == old or new < 0:
            continue
        arr[c, d] = new
        cells.add((c, d))
        revisions.append({"date": (START + dt.timedelta(days=d)).isoformat(),
                          "state": counties[c][0], "county": counties[c][1], "field": field,
                          "old_value": old, "new_value": new})
    t_sim = time.perf_counter() - t0

    out = os.path.abspath(args.out_dir)
    v1, v2 = os.path.join(out, "v1"), os.path.join(out, "v2")
    for d_ in (v1, v2):
        if os.path.isdir(d_):
            shutil.rmtree(d_)
    rows1 = write_version(v1, Renderer(counties, n1, cases, deaths), appear, n1, args.recent_days)
    years1 = {(START + dt.timedelta(days=d)).year for d in range(n1)}
    changed_years = {last_year, (START + dt.timedelta(days=n2 - 1)).year}
    rows2 = write_version(v2, Renderer(counties, n2, cases2, deaths2), appear, n2,
                          args.recent_days, skip_years=years1 - changed_years, link_from=v1)

    # The counts a correct v1 -> v2 delta reports (rows, after de-duplicating the overlap).
    total1 = int(sum(int(np.sum(appear <= d)) for d in range(n1)))
    inserted = int(np.sum(appear <= n1))
    updated_cells = set()
    for (c, d) in cells:
        updated_cells.add((c, d))
        if d + 1 < n1:
            updated_cells.add((c, d + 1))  # its new_cases / new_deaths change too
    size = sum(os.path.getsize(os.path.join(v, f)) for v in (v1, v2) for f in os.listdir(v))
    size1 = sum(os.path.getsize(os.path.join(v1, f)) for f in os.listdir(v1))
    manifest = {
        "generator": "scripts/bench/generate_counties.py",
        "args": {"counties": args.counties, "dates": args.dates, "seed": args.seed,
                 "revisions": args.revisions, "recent_days": args.recent_days},
        "first_date": START.isoformat(),
        "v1_last_date": (START + dt.timedelta(days=n1 - 1)).isoformat(),
        "v2_new_date": (START + dt.timedelta(days=n2 - 1)).isoformat(),
        "v1_files": rows1, "v2_files": rows2,
        "v1_rows": total1, "v1_bytes": size1,
        "v2_expected": {"rows": total1 + inserted, "inserted": inserted,
                        "updated": len(updated_cells), "removed": 0,
                        "revised": len(revisions),
                        "unchanged": total1 - len(updated_cells)},
        "revisions": revisions,
    }
    with open(os.path.join(out, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1, ensure_ascii=False)
        f.write("\n")
    secs = time.perf_counter() - t0
    print(json.dumps({"step": "generate", "seconds": round(secs, 3),
                      "simulate_seconds": round(t_sim, 3), "counties": len(counties),
                      "v1_rows": total1, "v1_mb": round(size1 / 1e6, 1),
                      "all_mb": round(size / 1e6, 1), "out": out}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
