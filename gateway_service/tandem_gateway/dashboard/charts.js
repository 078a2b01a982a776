// Small SVG line charts for the Tandem dashboard: no library, no network.
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const W = 300;
  const H = 100;
  const PAD_LEFT = 34;
  const PAD_BOTTOM = 12;

  function svg(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
    return node;
  }

  function niceMax(value) {
    if (!(value > 0)) return 1;
    const power = Math.pow(10, Math.floor(Math.log10(value)));
    for (const step of [1, 2, 2.5, 5, 10]) {
      if (step * power >= value) return step * power;
    }
    return 10 * power;
  }

  function formatNumber(value) {
    if (value === null || value === undefined) return "–";
    if (value >= 100) return value.toFixed(0);
    if (value >= 10) return value.toFixed(1);
    return value.toFixed(2);
  }

  // Draw `series` ([{name, values}], values aligned with `times` in ms; null = gap)
  // into the <figure> `figure`, over [windowEnd - windowMs, windowEnd].
  function line(figure, options) {
    const { title, unit, times, series, windowMs, windowEnd } = options;
    figure.replaceChildren();
    const caption = document.createElement("figcaption");
    const name = document.createElement("span");
    name.textContent = title;
    const now = document.createElement("span");
    now.className = "now";
    caption.append(name, now);
    figure.append(caption);

    const values = series.flatMap((s) => s.values.filter((v) => v !== null && v !== undefined));
    if (times.length === 0 || values.length === 0) {
      const empty = document.createElement("div");
      empty.className = "empty";
      empty.textContent = "no data yet";
      figure.append(empty);
      return;
    }
    const top = niceMax(Math.max(...values));
    // The last `windowMs`, or less while the gateway has not been up that long.
    const start = Math.max(windowEnd - windowMs, Math.min(...times));
    const span = Math.max(windowEnd - start, 1000);
    const x = (t) => PAD_LEFT + ((t - start) / span) * (W - PAD_LEFT);
    const y = (v) => (H - PAD_BOTTOM) - (v / top) * (H - PAD_BOTTOM - 4);

    const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img" });
    chart.setAttribute("aria-label", title);
    chart.append(svg("line", { class: "axis", x1: PAD_LEFT, y1: H - PAD_BOTTOM, x2: W, y2: H - PAD_BOTTOM }));
    chart.append(svg("line", { class: "axis", x1: PAD_LEFT, y1: 4, x2: PAD_LEFT, y2: H - PAD_BOTTOM }));
    const topLabel = svg("text", { class: "label", x: PAD_LEFT - 3, y: 10, "text-anchor": "end" });
    topLabel.textContent = formatNumber(top);
    const zero = svg("text", { class: "label", x: PAD_LEFT - 3, y: H - PAD_BOTTOM, "text-anchor": "end" });
    zero.textContent = "0";
    const left = svg("text", { class: "label", x: PAD_LEFT, y: H - 1 });
    left.textContent = span >= 120000 ? `-${Math.round(span / 60000)} min` : `-${Math.round(span / 1000)} s`;
    const right = svg("text", { class: "label", x: W, y: H - 1, "text-anchor": "end" });
    right.textContent = "now";
    chart.append(topLabel, zero, left, right);

    const legend = document.createElement("div");
    legend.className = "legend";
    series.forEach((s, index) => {
      const cls = `s${index % 6}`;
      let points = [];
      const flush = () => {
        if (points.length === 1) {
          const [cx, cy] = points[0].split(",");
          chart.append(svg("circle", { class: `dot ${cls}`, cx, cy, r: 1.8 }));
        } else if (points.length) {
          chart.append(svg("polyline", { class: cls, points: points.join(" ") }));
        }
        points = [];
      };
      s.values.forEach((value, i) => {
        if (value === null || value === undefined || times[i] < start) {
          flush();
        } else {
          points.push(`${x(times[i]).toFixed(1)},${y(value).toFixed(1)}`);
        }
      });
      flush();
      const entry = document.createElement("span");
      const swatch = document.createElement("i");
      swatch.className = cls;
      entry.append(swatch, document.createTextNode(s.name));
      legend.append(entry);
    });
    now.textContent = series.length === 1
      ? `${formatNumber(series[0].values[series[0].values.length - 1])} ${unit}`
      : unit;
    figure.append(chart);
    if (series.length > 1) figure.append(legend);
  }

  window.TandemCharts = { line };
})();
