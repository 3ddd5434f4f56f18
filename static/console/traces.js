// The trace page: the span whose panel is shown is marked in the tree (aria-current), and the URL
// says which one it is (?span=<id>, pushed by the link's hx-push-url; the server renders that span's
// panel and opens the tree down to it when the page is loaded from the URL).
(function () {
  "use strict";

  function mark(spanId) {
    document.querySelectorAll("#span-tree a[data-span]").forEach(function (link) {
      if (link.dataset.span === spanId) {
        link.setAttribute("aria-current", "true");
      } else {
        link.removeAttribute("aria-current");
      }
    });
  }

  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("#span-tree a[data-span]");
    if (link) {
      mark(link.dataset.span);
    }
  });

  // Back and forward between selected spans: htmx restores the page as it was; mark its span.
  document.addEventListener("htmx:historyRestore", function () {
    mark(new URLSearchParams(window.location.search).get("span") || "");
  });
})();
