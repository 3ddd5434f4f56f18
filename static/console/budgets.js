// The budgets page's spend chart: reads the JSON data block the page renders (no inline script,
// per the CSP) and draws it with the vendored Chart.js; buttons switch agent / model / end user.
(function () {
  "use strict";
  function start() {
    var canvas = document.getElementById("spend-chart");
    var source = document.getElementById("spend-data");
    if (!canvas || !source || typeof Chart === "undefined") { return; }
    var data = JSON.parse(source.textContent);
    var palette = ["#1d4ed8", "#d97706", "#059669", "#dc2626", "#7c3aed", "#0891b2", "#be185d", "#4d7c0f", "#64748b"];
    function datasets(dimension) {
      return (data[dimension] || []).map(function (series, i) {
        var color = palette[i % palette.length];
        return { label: series.label, data: series.data, backgroundColor: color, borderColor: color, stack: "spend" };
      });
    }
    var chart = new Chart(canvas, {
      type: "bar",
      data: { labels: data.days, datasets: datasets("agent") },
      options: {
        animation: false,
        responsive: true,
        aspectRatio: 3,
        scales: { x: { stacked: true }, y: { stacked: true, title: { display: true, text: "USD settled" } } },
        plugins: { legend: { position: "bottom" } }
      }
    });
    canvas.dataset.ready = "true";
    document.getElementById("spend-dimension").addEventListener("click", function (event) {
      var button = event.target.closest("button[data-dimension]");
      if (!button) { return; }
      chart.data.datasets = datasets(button.dataset.dimension);
      chart.update();
      button.parentNode.querySelectorAll("button").forEach(function (b) {
        var on = b === button;
        b.setAttribute("aria-pressed", on ? "true" : "false");
        b.classList.toggle("secondary", !on);
      });
    });
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();
