// The approvals pages (issue 19): the queue from the keyboard, and expiry countdowns that count.
//
// Queue keys (none while typing in a field or while a dialog is open): j / k select the next /
// previous pending request (focused, so its focus ring shows and a screen reader reads it, and
// scrolled into view); a approves it and r rejects it without opening it; o or Enter opens it;
// x ticks it for bulk approval; ? lists the keys; Escape leaves the bulk note field. A decision is posted to the request's decide
// view (from=queue), the same service and permissions as its page: the answer is the queue's
// decide dialog (approvals/index.html#queue_decide), asking to confirm an irreversible approval
// (Enter confirms, Escape cancels) or for the comment a rejection needs (Ctrl+Enter sends). The
// dialog is outside #live, so a live update never replaces a comment being written.
(function () {
  "use strict";
  var SOON = 120; // seconds; approval_queue.SOON_SECONDS
  var selectedId = "";
  var selectedIndex = 0; // where the selection was, for when its request leaves the queue
  var ticked = {}; // ids ticked for bulk approval, restored when a live update redraws their group
  var busy = false;

  function byId(id) { return document.getElementById(id); }
  function idOf(row) { return row.id.replace(/^approval-/, ""); }
  function pendingRows() {
    return Array.prototype.filter.call(
      document.querySelectorAll("#approval-list .approval-row[data-status='pending']"),
      function (row) { return !row.closest("[hidden]"); }
    );
  }
  function selectedRow() {
    var row = selectedId ? byId("approval-" + selectedId) : null;
    return row && row.closest("#approval-list") ? row : null;
  }

  function select(row, focus) {
    document.querySelectorAll("#approval-list .approval-row.is-selected").forEach(function (other) {
      if (other !== row) { other.classList.remove("is-selected"); other.removeAttribute("aria-current"); }
    });
    selectedId = row ? idOf(row) : "";
    if (!row) { return; }
    selectedIndex = Math.max(0, pendingRows().indexOf(row));
    row.classList.add("is-selected");
    row.setAttribute("aria-current", "true");
    if (focus) {
      row.focus({ preventScroll: true });
      row.scrollIntoView({ block: "nearest" });
    }
  }

  function move(step) {
    var rows = pendingRows();
    if (!rows.length) { return; }
    var index = rows.indexOf(selectedRow());
    var next = index < 0 ? (step > 0 ? 0 : rows.length - 1) : Math.min(rows.length - 1, Math.max(0, index + step));
    select(rows[next], true);
  }

  // --- Deciding ---------------------------------------------------------------------------------
  function decideDialog() { return byId("queue-decide"); }

  function decide(decision) {
    var row = selectedRow();
    var dialog = decideDialog();
    if (!row || !dialog || busy || !window.htmx) { return; }
    busy = true;
    window.htmx.ajax("POST", row.dataset.decideUrl, {
      source: dialog,
      target: "#queue-decide-body",
      swap: "innerHTML",
      values: { from: "queue", decision: decision }
    }).finally(function () { busy = false; });
  }

  function removeRow(id, status) {
    if (!id || status === "pending") { return; } // a vote towards a quorum: the row stays
    var row = byId("approval-" + id);
    if (!row) { reselect(); return; } // a live update removed it first
    var group = row.closest(".approval-group");
    row.remove();
    delete ticked[id];
    // The group stays (hidden) until the live update removes it, so that update finds its target.
    if (group && !group.querySelector(".approval-row")) { group.hidden = true; }
    if (!pendingRows().length) {
      var empty = byId("queue-empty");
      var bulk = byId("bulk-controls");
      if (empty) { empty.hidden = false; }
      if (bulk) { bulk.hidden = true; }
    }
    reselect();
  }

  // The selected request left the queue (decided here or by someone else): select the one that
  // took its place, and give it the focus if the focus left with the removed row.
  function reselect() {
    if (!selectedId || selectedRow()) { return; }
    var rest = pendingRows();
    var lost = !document.activeElement || document.activeElement === document.body;
    var next = rest.length ? rest[Math.min(selectedIndex, rest.length - 1)] : null;
    if (!next) { selectedId = ""; return; }
    select(next, false);
    if (lost && !document.querySelector("dialog[open]")) { next.focus({ preventScroll: true }); }
  }

  // After the settle, not the swap: htmx wires the new form up (hx-post) when it settles, so a
  // dialog shown and focused earlier could be submitted by Enter as a plain form post.
  document.addEventListener("htmx:afterSettle", function (event) {
    var dialog = decideDialog();
    if (!dialog || event.detail.target !== byId("queue-decide-body")) { return; }
    var content = byId("queue-decide-content");
    if (!content) { return; }
    if (content.dataset.decided) {
      if (dialog.open) { dialog.close(); }
      removeRow(content.dataset.decided, content.dataset.status);
      focusSelected();
      return;
    }
    if (content.dataset.status !== "pending") { removeRow(content.dataset.approval, content.dataset.status); }
    if (!dialog.open) { dialog.showModal(); }
    var first = dialog.querySelector("[autofocus]") || dialog.querySelector("button");
    if (first) { first.focus(); }
  });

  // --- Keys -------------------------------------------------------------------------------------
  // A field that takes text (a ticked checkbox still lets the keys through).
  var NOT_TEXT = ["checkbox", "radio", "button", "submit", "reset"];
  function typing(target) {
    if (!target || !target.closest) { return false; }
    if (target.closest("textarea, select, [contenteditable]:not([contenteditable='false'])")) { return true; }
    return target.tagName === "INPUT" && NOT_TEXT.indexOf(target.type) < 0;
  }

  document.addEventListener("keydown", function (event) {
    var target = event.target;
    // Ctrl/Cmd+Enter in the dialog's comment sends it with the dialog's decision button.
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && target && target.id === "queue-note") {
      var form = target.form;
      var button = form && form.querySelector("footer button[type='submit']");
      if (button) { event.preventDefault(); form.requestSubmit(button); }
      return;
    }
    if (!byId("approval-list") || event.defaultPrevented || event.isComposing) { return; }
    // Escape leaves a field of the queue (the bulk note), giving the keys back.
    if (event.key === "Escape" && typing(target) && target.closest("#approval-queue")) {
      target.blur();
      var back = selectedRow();
      if (back) { back.focus({ preventScroll: true }); }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey || typing(target)) { return; }
    if (document.querySelector("dialog[open]")) { return; }
    var row = selectedRow();
    switch (event.key) {
      case "j": move(1); break;
      case "k": move(-1); break;
      case "a": if (!row) { return; } decide("approve"); break;
      case "r": if (!row) { return; } decide("reject"); break;
      case "o":
      case "Enter":
        // Enter keeps its meaning on a link or a button; it opens the request from the row itself.
        if (!row || (event.key === "Enter" && target !== row)) { return; }
        window.location.assign(row.querySelector("a[href]").href);
        break;
      case "x":
        if (!row) { return; }
        var box = row.querySelector("input[name='ids']");
        box.checked = !box.checked;
        box.dispatchEvent(new Event("change", { bubbles: true }));
        break;
      case "?": openDialog("queue-keys"); break;
      default: return;
    }
    event.preventDefault();
  });

  function openDialog(id) {
    var dialog = byId(id);
    if (dialog && !dialog.open) { dialog.showModal(); }
  }

  document.addEventListener("click", function (event) {
    var close = event.target.closest("[data-dialog-close]");
    if (close) { close.closest("dialog").close(); return; }
    var opener = event.target.closest("[data-open-dialog]");
    if (opener) { openDialog(opener.dataset.openDialog); return; }
  });
  // A closed dialog gives the focus back to the selected request (its `close` event comes a task
  // later; the decision's answer does it at once).
  function focusSelected() {
    reselect();
    var row = selectedRow();
    var active = document.activeElement;
    if (row && !document.querySelector("dialog[open]") && (!active || active === document.body || active === row)) {
      row.focus({ preventScroll: true });
    }
  }
  document.addEventListener("close", function (event) {
    if (event.target.tagName === "DIALOG") { focusSelected(); }
  }, true);
  // The mouse and Tab select too: the keys then act on the request being looked at.
  document.addEventListener("focusin", function (event) {
    var row = event.target.closest && event.target.closest("#approval-list .approval-row");
    if (row && idOf(row) !== selectedId) { select(row, false); }
  });
  document.addEventListener("change", function (event) {
    var box = event.target;
    if (box.name !== "ids" || !box.closest("#approval-list")) { return; }
    if (box.checked) { ticked[box.value] = true; } else { delete ticked[box.value]; }
  });

  // A live update redraws a group: keep its selection, its focus and the ticks. Run after the
  // message and again after htmx settles the swap (its settle step puts the old row's classes on
  // the new one for a moment, then the new row's own), so a redraw that lands after the decide
  // dialog gave the focus back leaves the focus on the selected request, not on the page.
  function restore() {
    reselect();
    var row = selectedRow();
    if (row && !row.classList.contains("is-selected")) { select(row, false); }
    var active = document.activeElement;
    if (row && !document.querySelector("dialog[open]") && (!active || active === document.body)) {
      row.focus({ preventScroll: true });
    }
    Object.keys(ticked).forEach(function (id) {
      var box = byId("select-" + id);
      if (box) { box.checked = true; }
    });
    tick();
  }
  document.addEventListener("htmx:wsAfterMessage", restore);
  document.addEventListener("htmx:afterSettle", function (event) {
    if (byId("approval-list") && event.detail.target !== byId("queue-decide-body")) { restore(); }
  });
  document.body.addEventListener("console:liveRefetched", restore); // dispatched on <body>, not bubbling

  // --- Countdowns -------------------------------------------------------------------------------
  // From the seconds left when the server rendered it, so the browser's clock does not matter.
  function expiryText(left) {
    if (left <= 0) { return "expired"; }
    var text;
    if (left < 60) {
      text = left + " s";
    } else if (left < 3600) {
      text = Math.floor(left / 60) + " min" + (left % 60 ? " " + (left % 60) + " s" : "");
    } else {
      var minutes = Math.floor(left / 60);
      var hours = Math.floor(minutes / 60);
      if (hours < 24) {
        text = hours + " h" + (minutes % 60 ? " " + (minutes % 60) + " min" : "");
      } else {
        text = Math.floor(hours / 24) + " d" + (hours % 24 ? " " + (hours % 24) + " h" : "");
      }
    }
    return "expires in " + text;
  }
  function tick() {
    // A decided request's page stops counting (its status says what happened).
    if (document.querySelector("#approval-decision-state [data-status]:not([data-status='pending'])")) { return; }
    var now = performance.now();
    document.querySelectorAll("time[data-countdown]").forEach(function (el) {
      if (!el.dataset.seenAt) { el.dataset.seenAt = String(now); }
      var left = Number(el.dataset.countdown) - Math.floor((now - Number(el.dataset.seenAt)) / 1000);
      var text = expiryText(left);
      if (el.textContent !== text) { el.textContent = text; }
      el.classList.toggle("is-soon", left < SOON);
    });
  }
  tick();
  window.setInterval(tick, 1000);
})();
