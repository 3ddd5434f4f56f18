// The evals page's quality chart: reads the JSON data block the page renders (no inline script,
// per the CSP) and draws the online pass rate per agent and model per day with the vendored Chart.js.
(function () {
  "use strict";
  function start() {
    var canvas = document.getElementById("quality-chart");
    var source = document.getElementById("quality-data");
    if (!canvas || !source || typeof Chart === "undefined") { return; }
    var points = JSON.parse(source.textContent);
    var days = Array.from(new Set(points.map(function (p) { return p.day; }))).sort();
    var series = {};
    points.forEach(function (p) {
      var key = p.agent + " · " + p.model;
      series[key] = series[key] || {};
      series[key][p.day] = p.pass_rate === null ? null : Math.round(p.pass_rate * 1000) / 10;
    });
    var palette = ["#1d4ed8", "#d97706", "#059669", "#dc2626", "#7c3aed", "#0891b2", "#be185d", "#4d7c0f"];
    var datasets = Object.keys(series).map(function (key, i) {
      var color = palette[i % palette.length];
      return { label: key, data: days.map(function (d) { return series[key][d] === undefined ? null : series[key][d]; }),
               borderColor: color, backgroundColor: color, spanGaps: true };
    });
    new Chart(canvas, {
      type: "line",
      data: { labels: days, datasets: datasets },
      options: { animation: false, responsive: true, aspectRatio: 3,
                 scales: { y: { min: 0, max: 100, title: { display: true, text: "pass rate %" } } },
                 plugins: { legend: { position: "bottom" } } }
    });
    canvas.dataset.ready = "true";
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();
