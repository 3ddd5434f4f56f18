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
    var toggle = event.target.closest(".nav-toggle");
    if (toggle) {
      var sidebar = document.getElementById("sidebar");
      var open = sidebar.classList.toggle("open");
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
      return;
    }
    var button = event.target.closest("[data-copy]");
    if (!button) { return; }
    var input = document.querySelector(button.dataset.copy);
    if (!input) { return; }
    input.select();
    if (navigator.clipboard) { navigator.clipboard.writeText(input.value).catch(function () {}); }
    button.textContent = "Copied";
  });
  // Required fields: mark each one's label (Django renders the `required` attribute on the control).
  function markRequired(root) {
    root.querySelectorAll("input[required], select[required], textarea[required]").forEach(function (control) {
      if (!control.id || control.type === "checkbox" || control.type === "radio" || control.type === "hidden") { return; }
      var label = document.querySelector('label[for="' + control.id + '"]');
      if (label) { label.classList.add("required"); }
    });
  }
  document.addEventListener("DOMContentLoaded", function () { markRequired(document); });
  document.addEventListener("htmx:load", function (event) { markRequired(event.target); });
})();
