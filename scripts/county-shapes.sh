#!/usr/bin/env bash
# Regenerates the dashboard's county map geometry, services/dashboard/assets/counties.json, from
# the npm packages us-atlas (ISC; US Census Bureau cartographic boundaries, public domain) and
# topojson-client (ISC). Needs only node, npm and the npm registry.
#
# us-atlas's counties-albers-10m.json is already projected (Albers USA, 975×610, Alaska and Hawaii
# inset), so the asset is plain SVG path data: one path per county keyed by its 5-digit FIPS code,
# coordinates scaled by SCALE (default 2: a 1950×1220 view box, half-pixel detail at 975 px),
# rounded to integers and written relative ("m…l…z"), plus the state borders and the nation
# outline as one path each, and the counties' names; and one path per state (50 and DC) keyed by
# its 2-digit FIPS code, with the states' names, for the map's states level. The page sets the
# paths' fills; it decodes nothing.
#
# Usage: scripts/county-shapes.sh [output.json]
set -euo pipefail

US_ATLAS=us-atlas@3.0.1
TOPOJSON_CLIENT=topojson-client@3.1.0
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/services/dashboard/assets/counties.json}
scale=${SCALE:-2}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "[shapes] fetching $US_ATLAS and $TOPOJSON_CLIENT from the npm registry into $work"
(cd "$work" && npm pack --silent "$US_ATLAS" "$TOPOJSON_CLIENT" >/dev/null)
echo "[shapes] unpacking the packages"
mkdir -p "$work/us-atlas" "$work/topojson-client"
tar xzf "$work"/us-atlas-*.tgz -C "$work/us-atlas" --strip-components=1
tar xzf "$work"/topojson-client-*.tgz -C "$work/topojson-client" --strip-components=1

echo "[shapes] writing the county paths (SCALE=$scale) to $out"
node - "$work" "$out" "$scale" "$US_ATLAS" <<'JS'
const [work, out, scaleArg, source] = process.argv.slice(2);
const fs = require("fs");
const topojson = require(work + "/topojson-client/dist/topojson-client.js");
const topology = JSON.parse(fs.readFileSync(work + "/us-atlas/counties-albers-10m.json", "utf8"));
const scale = Number(scaleArg);
if (!(scale > 0)) throw new Error("SCALE must be a positive number");

// Relative path data for rings of projected points: scaled and rounded first (so errors never add up), then
// written as differences, dropping points the rounding made equal to the previous one.
function pathOf(lines, closed) {
  let d = "";
  let px = 0;
  let py = 0;
  const num = (v) => String(v);
  const pair = (dx, dy) => {
    const y = num(dy);
    return num(dx) + (y.startsWith("-") ? "" : " ") + y;
  };
  for (const line of lines) {
    const pts = [];
    for (const [x, y] of line) {
      const q = [Math.round(x * scale), Math.round(y * scale)];
      const last = pts[pts.length - 1];
      if (!last || last[0] !== q[0] || last[1] !== q[1]) pts.push(q);
    }
    if (closed && pts.length > 1) {
      const [f, l] = [pts[0], pts[pts.length - 1]];
      if (f[0] === l[0] && f[1] === l[1]) pts.pop();
    }
    if (pts.length < (closed ? 3 : 2)) continue;
    d += "m" + pair(pts[0][0] - px, pts[0][1] - py);
    let ox = pts[0][0];
    let oy = pts[0][1];
    let body = "";
    for (let i = 1; i < pts.length; i++) {
      const p = pair(pts[i][0] - ox, pts[i][1] - oy);
      body += body && !p.startsWith("-") ? " " + p : p;
      ox = pts[i][0];
      oy = pts[i][1];
    }
    d += "l" + body + (closed ? "z" : "");
    // After "z" the current point is the ring's start; after an open line it is its end.
    [px, py] = closed ? pts[0] : [ox, oy];
  }
  // The first command is an absolute move (a relative one from 0,0 is the same point).
  return d.length ? "M" + d.slice(1) : d;
}

function rings(geometry) {
  if (geometry.type === "Polygon") return geometry.coordinates;
  if (geometry.type === "MultiPolygon") return geometry.coordinates.flat();
  return [];
}

const counties = {};
const names = {};
for (const f of topojson.feature(topology, topology.objects.counties).features) {
  if (!/^\d{5}$/.test(f.id)) throw new Error("a county without a 5-digit FIPS code: " + f.id);
  let d = pathOf(rings(f.geometry), true);
  if (!d) {
    // A county smaller than the grid (three Virginia cities at SCALE=2) is kept as a one-unit
    // square at its first point, so it can still be shaded and pointed at.
    const [x, y] = rings(f.geometry)[0][0].map((v) => Math.round(v * scale));
    d = "M" + x + " " + y + "h1v1h-1z";
  }
  counties[f.id] = d;
  names[f.id] = f.properties.name;
}
// The states level shades whole states: one path each (drawn from the same arcs as the
// counties, so the outlines meet the county borders).
const stateAreas = {};
const stateNames = {};
for (const f of topojson.feature(topology, topology.objects.states).features) {
  if (!/^\d{2}$/.test(f.id)) throw new Error("a state without a 2-digit FIPS code: " + f.id);
  stateAreas[f.id] = pathOf(rings(f.geometry), true);
  stateNames[f.id] = f.properties.name;
}
const states = topojson.mesh(topology, topology.objects.states, (a, b) => a !== b);
const nation = topojson.feature(topology, topology.objects.nation).features[0];
const asset = {
  source: source + " counties-albers-10m.json (US Census Bureau cartographic boundaries, 1:10,000,000; public domain), via topojson-client; generated by scripts/county-shapes.sh",
  width: Math.round(975 * scale),
  height: Math.round(610 * scale),
  states: pathOf(states.coordinates, false),
  nation: pathOf(rings(nation.geometry), true),
  names,
  counties,
  stateNames,
  stateAreas,
};
fs.writeFileSync(out, JSON.stringify(asset) + "\n");
console.log("[shapes] " + out + ": " + Object.keys(counties).length + " counties, " + Object.keys(stateAreas).length + " states, " + fs.statSync(out).size + " bytes");
JS
