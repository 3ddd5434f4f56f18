// Small behaviours that would otherwise need inline script (forbidden by the CSP).
(function () {
  "use strict";
  function setLive(state, text) {
    var el = document.getElementById("live-status");
    if (el) { el.dataset.state = state; el.textContent = text; }
  }
  // A broken live socket: say so on the page while the ws extension reconnects (with backoff), and
  // once it is back, refetch the page's live parts (#live and [data-live-refetch]) so nothing
  // pushed meanwhile is missed.
  var lost = false;
  function lostBanner(show) {
    var el = document.getElementById("live-lost");
    if (show && !el) {
      el = document.createElement("p");
      el.id = "live-lost";
      el.setAttribute("role", "status");
      el.setAttribute("data-testid", "live-lost");
      el.textContent = "Live updates interrupted: reconnecting…";
      var main = document.querySelector("main") || document.body;
      main.insertBefore(el, main.firstChild);
    } else if (!show && el) {
      el.remove();
    }
  }
  function refetchLiveParts() {
    var parts = document.querySelectorAll("#live, [data-live-refetch]");
    if (!parts.length || !window.fetch) { return; }
    fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) { return response.ok ? response.text() : Promise.reject(response.status); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        parts.forEach(function (part) {
          var replacement = part.id ? fresh.getElementById(part.id) : null;
          if (replacement) {
            part.replaceWith(replacement);
            if (window.htmx) { window.htmx.process(replacement); }
          }
        });
        document.body.dispatchEvent(new CustomEvent("console:liveRefetched"));
      })
      .catch(function () { /* the next reconnect tries again */ lost = true; });
  }
  document.addEventListener("htmx:wsOpen", function () {
    setLive("open", "live");
    if (lost) { lost = false; lostBanner(false); refetchLiveParts(); }
  });
  document.addEventListener("htmx:wsClose", function () {
    lost = true;
    setLive("closed", "live updates reconnecting…");
    lostBanner(true);
  });
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
  // A table wider than the screen scrolls inside itself (console.css); make it reachable by keyboard.
  function focusableScrollers() {
    document.querySelectorAll("main table").forEach(function (table) {
      if (table.scrollWidth > table.clientWidth + 1) {
        if (!table.hasAttribute("tabindex")) { table.setAttribute("tabindex", "0"); }
      } else if (table.getAttribute("tabindex") === "0") {
        table.removeAttribute("tabindex");
      }
    });
  }
  // Flash messages an htmx answer carried (console/middleware.py): shown at the top of the page.
  // Read off the answer as it arrives, not only once it is swapped in: when a live update has
  // replaced the request's target meanwhile (the reviewer's own decision, pushed over the socket
  // on commit, often lands before the POST's answer), htmx swaps the answer into the detached old
  // element, whose events never reach the document, and the page would never see the message.
  function showFlash(template) {
    var box = document.getElementById("messages");
    if (box) { box.replaceChildren(template.content.cloneNode(true)); }
  }
  document.addEventListener("htmx:beforeRequest", function (event) {
    var xhr = event.detail && event.detail.xhr;
    if (!xhr) { return; }
    xhr.addEventListener("load", function () {
      var body = xhr.status >= 200 && xhr.status < 300 && typeof xhr.response === "string" ? xhr.response : "";
      if (body.indexOf("<template data-flash>") < 0) { return; }
      var holder = document.createElement("template"); // parsed inert: no script runs, no image loads
      holder.innerHTML = body;
      var flash = holder.content.querySelector("template[data-flash]");
      if (flash) { showFlash(flash); }
    });
  });
  document.addEventListener("htmx:afterSettle", function () {
    document.querySelectorAll("template[data-flash]").forEach(function (template) {
      showFlash(template);
      template.remove();
    });
  });
  document.addEventListener("DOMContentLoaded", function () { markRequired(document); focusableScrollers(); });
  document.addEventListener("htmx:load", function (event) { markRequired(event.target); focusableScrollers(); });
  window.addEventListener("resize", focusableScrollers);
})();
