/* ensemble-otel report: draws each strategy's charts with uPlot from the embedded data.
 *
 * The embedded columns hold every record. A chart draws, per pixel column of the visible
 * range, only the first, last, lowest and highest record of each series (real records, no
 * averaging), and recomputes that after a zoom, so a year of hourly buckets stays light
 * while zooming in shows every record. Tables come from the full data, never from this.
 *
 * When done, #report-status gets data-state="rendered" (or "error"), data-charts and
 * data-render-ms; each figure.chart gets data-drawn (points drawn) next to data-points.
 */
(function () {
  "use strict";

  var status = document.getElementById("report-status");

  function fail(err) {
    var msg = err && err.message ? err.message : String(err);
    status.dataset.state = "error";
    status.textContent = "Charts could not be drawn: " + msg;
    if (window.console) console.error(err);
  }

  // ---- formatting -------------------------------------------------------------------

  var money2 = new Intl.NumberFormat("en-US", {minimumFractionDigits: 2, maximumFractionDigits: 2});
  var compact = new Intl.NumberFormat("en-US", {notation: "compact", maximumFractionDigits: 2});
  var int0 = new Intl.NumberFormat("en-US", {maximumFractionDigits: 0});

  function two(n) { return n < 10 ? "0" + n : String(n); }

  function timeText(ts) {
    var d = new Date(ts * 1000);
    return d.getUTCFullYear() + "-" + two(d.getUTCMonth() + 1) + "-" + two(d.getUTCDate()) +
      " " + two(d.getUTCHours()) + ":" + two(d.getUTCMinutes()) + " UTC";
  }

  function decimalsFor(incr) {  // the decimals of the tick step (2.5 -> 1, 0.25 -> 2)
    if (!(incr > 0)) return 2;
    for (var d = 0; d < 6; d++) {
      var scaled = incr * Math.pow(10, d);
      if (Math.abs(scaled - Math.round(scaled)) < 1e-6 * Math.max(1, scaled)) return d;
    }
    return 6;
  }

  function fixed(v, d) {
    return new Intl.NumberFormat("en-US", {minimumFractionDigits: d, maximumFractionDigits: d})
      .format(v);
  }

  // legend(v): the value under the cursor; axis(v, incr): a tick label, incr = tick step
  var FORMATS = {
    money: {
      legend: function (v) { return money2.format(v); },
      axis: function (v, incr) {
        return Math.abs(v) >= 10000 && incr >= 100 ? compact.format(v) : fixed(v, decimalsFor(incr));
      }
    },
    percent: {
      legend: function (v) { return (v * 100).toFixed(2) + " %"; },
      axis: function (v, incr) { return (v * 100).toFixed(decimalsFor(incr * 100)) + "%"; }
    },
    ratio: {
      legend: function (v) { return v.toFixed(4); },
      axis: function (v, incr) { return v.toFixed(decimalsFor(incr)); }
    },
    count: {
      legend: function (v) { return int0.format(v); },
      axis: function (v) { return Number.isInteger(v) ? int0.format(v) : ""; }
    }
  };

  function rgba(hex, alpha) {
    var n = parseInt(hex.slice(1), 16);
    return "rgba(" + (n >> 16 & 255) + "," + (n >> 8 & 255) + "," + (n & 255) + "," + alpha + ")";
  }

  // ---- display downsampling ---------------------------------------------------------

  function lowerBound(xs, v) {  // first index with xs[i] >= v
    var lo = 0, hi = xs.length;
    while (lo < hi) { var mid = (lo + hi) >> 1; if (xs[mid] < v) lo = mid + 1; else hi = mid; }
    return lo;
  }

  function upperBound(xs, v) {  // first index with xs[i] > v
    var lo = 0, hi = xs.length;
    while (lo < hi) { var mid = (lo + hi) >> 1; if (xs[mid] <= v) lo = mid + 1; else hi = mid; }
    return lo;
  }

  // Indexes to draw for [lo, hi] at `cols` pixel columns: one neighbour outside each edge,
  // and per column the first, last, min and max record of every series.
  function pickIndexes(xs, ys, lo, hi, cols) {
    var n = xs.length;
    var i0 = Math.max(0, lowerBound(xs, lo) - 1);
    var i1 = Math.min(n - 1, upperBound(xs, hi));
    if (i1 < i0) i1 = i0;
    var out = [], i;
    if (i1 - i0 + 1 <= cols * 2) {
      for (i = i0; i <= i1; i++) out.push(i);
      return out;
    }
    var x0 = xs[i0], span = (xs[i1] - x0) || 1, m = ys.length;
    var col = -1, first = 0, last = 0, mins = new Array(m), maxs = new Array(m);
    function flush() {
      var set = [first, last], s;
      for (s = 0; s < m; s++) { set.push(mins[s], maxs[s]); }
      set.sort(function (a, b) { return a - b; });
      for (s = 0; s < set.length; s++) {
        if (s === 0 || set[s] !== set[s - 1]) out.push(set[s]);
      }
    }
    for (i = i0; i <= i1; i++) {
      var c = Math.min(cols - 1, Math.floor((xs[i] - x0) / span * cols));
      if (c !== col) {
        if (col >= 0) flush();
        col = c; first = i;
        for (var s0 = 0; s0 < m; s0++) { mins[s0] = i; maxs[s0] = i; }
      } else {
        for (var s1 = 0; s1 < m; s1++) {
          var y = ys[s1][i];
          if (y < ys[s1][mins[s1]]) mins[s1] = i;
          if (y > ys[s1][maxs[s1]]) maxs[s1] = i;
        }
      }
      last = i;
    }
    flush();
    return out;
  }

  function sample(xs, ys, lo, hi, cols) {
    var idx = pickIndexes(xs, ys, lo, hi, cols);
    var data = [idx.map(function (i) { return xs[i]; })];
    ys.forEach(function (y) { data.push(idx.map(function (i) { return y[i]; })); });
    return data;
  }

  // ---- charts -----------------------------------------------------------------------

  function seriesOpts(sr, fmt, negColor) {
    var base = {
      label: sr.label,
      stroke: sr.color,
      width: 1.5,
      points: {show: false},
      value: function (u, v) { return v == null ? "–" : fmt.legend(v); }
    };
    if (sr.kind === "dashed") { base.width = 1.25; base.dash = [6, 4]; }
    if (sr.kind === "area") { base.width = 1; base.fill = rgba(sr.color, 0.2); }
    if (sr.kind === "bars" || sr.kind === "signed_bars") {
      base.width = 0;
      base.fill = sr.color;
      base.paths = uPlot.paths.bars({size: [0.8, 40, 1]});
    }
    if (sr.kind === "signed_bars") {
      base.paths = uPlot.paths.bars({
        size: [0.8, 40, 1],
        disp: {fill: {unit: 3, values: function (u, si) {
          return u.data[si].map(function (v) { return v < 0 ? negColor : sr.color; });
        }}}
      });
    }
    return base;
  }

  function yRange(chart) {
    if (chart.format === "count" || chart.id === "drawdown" || chart.format === "ratio") {
      return function (u, min, max) {
        var top = max > 0 ? max * 1.08 : 1;
        return [0, top];
      };
    }
    if (chart.series.some(function (s) { return s.kind === "signed_bars"; })) {
      return function (u, min, max) {
        var lo = Math.min(0, min), hi = Math.max(0, max), pad = (hi - lo) * 0.06 || 1;
        return [lo - (lo < 0 ? pad : 0), hi + (hi > 0 ? pad : 0)];
      };
    }
    return function (u, min, max) {
      var pad = (max - min) * 0.06 || Math.abs(max) * 0.01 || 1;
      return [min - pad, max + pad];
    };
  }

  function plotWidth(el) { return Math.max(320, Math.floor(el.clientWidth || 600)); }

  function makeChart(fig, chart, s, ctx) {
    var el = fig.querySelector(".plot");
    var xs = s.columns.t;
    var ys = chart.series.map(function (sr) { return s.columns[sr.field]; });
    var fmt = FORMATS[chart.format];
    var bucket = ctx.bucketSeconds;
    var view = {lo: xs[0], hi: xs[xs.length - 1], pending: false};
    var width = plotWidth(el);
    var bars = chart.series.filter(function (sr) { return sr.kind === "bars"; });
    var series = [{label: "Time", value: function (u, v) { return v == null ? "–" : timeText(v); }}];
    chart.series.forEach(function (sr) {
      var o = seriesOpts(sr, fmt, ctx.negColor);
      if (sr.kind === "bars" && bars.length > 1) {
        // side by side: the first bar left of the bucket time, the next right of it
        o.paths = uPlot.paths.bars({size: [0.45, 20, 1], align: bars.indexOf(sr) === 0 ? -1 : 1});
      }
      series.push(o);
    });

    function redraw(u) {
      view.pending = false;
      u.setData(sample(xs, ys, view.lo, view.hi, Math.round(u.bbox.width / devicePixelRatio)), false);
      u.setScale("x", {min: view.lo, max: view.hi});
      u.setScale("y", {min: null, max: null});  // re-range y on the new points
      fig.dataset.drawn = String(u.data[0].length);
    }

    var opts = {
      width: width,
      height: chart.id === "equity" ? 240 : 200,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); },
      scales: {
        x: {time: true, range: function (u, min, max) {
          return min === max ? [min - bucket / 2, max + bucket / 2] : [min, max];
        }},
        y: {dir: chart.invert ? -1 : 1, range: yRange(chart)}
      },
      series: series,
      axes: [
        {stroke: "#3b4252", grid: {stroke: "#eceff4"}, ticks: {stroke: "#d8dee9"}},
        {stroke: "#3b4252", size: 72, grid: {stroke: "#eceff4"}, ticks: {stroke: "#d8dee9"},
         values: function (u, splits, ai, space, incr) {
           return splits.map(function (v) { return fmt.axis(v, incr); });
         }}
      ],
      legend: {live: true},
      cursor: {
        sync: {key: ctx.syncKey},
        drag: {x: true, y: false},
        bind: {dblclick: function () { return function (e) { if (e.button === 0) ctx.reset(); }; }}
      },
      hooks: {
        setScale: [function (u, key) {
          if (key !== "x" || u.scales.x.min == null) return;
          var lo = u.scales.x.min, hi = u.scales.x.max;
          if (lo === view.lo && hi === view.hi) return;
          view.lo = lo; view.hi = hi;
          if (!view.pending) {
            view.pending = true;
            requestAnimationFrame(function () { redraw(u); });
          }
        }]
      }
    };
    if (chart.format === "count" && ys.every(function (y) { return y.every(function (v) { return v === 0; }); })) {
      var note = document.createElement("div");
      note.className = "empty-note";
      note.textContent = "None in the selection";
      fig.appendChild(note);
    }
    var initial = sample(xs, ys, view.lo, view.hi, width);
    var u = new uPlot(opts, initial, el);
    fig.dataset.drawn = String(initial[0].length);
    u.ensembleFull = [xs[0], xs[xs.length - 1]];
    u.ensembleResize = function () {
      u.setSize({width: plotWidth(el), height: u.height});
      redraw(u);  // resample at the new width
    };
    return u;
  }

  function main() {
    var t0 = performance.now();
    if (typeof uPlot === "undefined") throw new Error("the embedded uPlot library did not load");
    var data = JSON.parse(document.getElementById("ensemble-data").textContent);
    var bucketSeconds = data.period === "24h" ? 86400 : 3600;
    var plots = [], drawn = 0;
    data.strategies.forEach(function (s, i) {
      if (!s.columns.t.length) return;
      var section = document.getElementById("strategy-" + i);
      var group = [];
      var ctx = {
        bucketSeconds: bucketSeconds,
        negColor: data.negative_color,
        syncKey: "strategy-" + i,
        reset: function () {
          group.forEach(function (u) {
            u.setScale("x", {min: u.ensembleFull[0], max: u.ensembleFull[1]});
          });
        }
      };
      data.charts.forEach(function (chart) {
        var fig = section.querySelector('figure.chart[data-chart="' + chart.id + '"]');
        var u = makeChart(fig, chart, s, ctx);
        group.push(u);
        plots.push(u);
        drawn += u.data[0].length;
      });
    });
    window.ensembleReport = {plots: plots, data: data};  // for people poking in devtools
    var timer = null;
    window.addEventListener("resize", function () {
      clearTimeout(timer);
      timer = setTimeout(function () { plots.forEach(function (u) { u.ensembleResize(); }); }, 150);
    });
    // uPlot draws in a microtask queued by each constructor; this one runs after them.
    Promise.resolve().then(function () {
      var now = performance.now(), ms = now - t0;
      status.dataset.charts = String(plots.length);
      status.dataset.drawn = String(drawn);
      status.dataset.renderMs = ms.toFixed(1);
      status.dataset.sinceNavigationMs = now.toFixed(1);
      status.dataset.state = "rendered";
      status.textContent = plots.length
        ? plots.length + " charts drawn in " + ms.toFixed(0) + " ms"
        : "No charts: nothing to draw (see the notes above).";
    }).catch(fail);
  }

  window.addEventListener("error", function (e) { fail(e.error || e.message); });
  try { main(); } catch (err) { fail(err); }
})();
