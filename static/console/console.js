// Small behaviours that would otherwise need inline script (forbidden by the CSP).
(function () {
  "use strict";
  function setLive(state, text) {
    var el = document.getElementById("live-status");
    if (el) { el.dataset.state = state; el.textContent = text; }
  }
  document.addEventListener("htmx:wsOpen", function () { setLive("open", "live"); });
  document.addEventListener("htmx:wsClose", function () { setLive("closed", "live updates reconnecting…"); });
  document.addEventListener("click", function (event) {
    var dismiss = event.target.closest("[data-dismiss]");
    if (dismiss) { dismiss.closest("article").remove(); return; }
    var button = event.target.closest("[data-copy]");
    if (!button) { return; }
    var input = document.querySelector(button.dataset.copy);
    if (!input) { return; }
    input.select();
    if (navigator.clipboard) { navigator.clipboard.writeText(input.value).catch(function () {}); }
    button.textContent = "Copied";
  });
})();
