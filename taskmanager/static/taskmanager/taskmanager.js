/* Live status of tasks in the admin: polls the task status endpoint and
   replaces in place what changes as a task runs: in the task list every
   cell of the row that can change, on the task page the status, progress
   bar and "Last execution" fields (the server renders them with the
   admin's own columns). Every HTML fragment comes from the server, already
   escaped. */
(function () {
  "use strict";
  var ACTIVE = { STARTED: true, SPOOLED: true, SCHEDULED: true };
  // With no task waiting or running, ask only every IDLE_EVERY-th poll: a
  // run started elsewhere (another user, another tab) still shows up.
  var IDLE_EVERY = 5;
  var idlePolls = 0;

  function liveElements() {
    return Array.prototype.slice.call(document.querySelectorAll(".tm-live[data-task]"));
  }

  function anyActive(elements) {
    return elements.some(function (el) { return ACTIVE[el.getAttribute("data-status")]; });
  }

  function replaceCells(el, cells) {
    var row = el.closest("#result_list tr");
    if (!row || !cells) { return false; }
    Object.keys(cells).forEach(function (name) {
      var cell = row.querySelector(".field-" + name);
      if (cell) { cell.innerHTML = cells[name]; }
    });
    return true;
  }

  function apply(data) {
    liveElements().forEach(function (el) {
      var info = data.tasks[el.getAttribute("data-task")];
      if (!info) { return; }
      // A row of the task list: all its changing cells, this element included.
      if (replaceCells(el, info.cells)) { return; }
      var before = el.getAttribute("data-status");
      el.setAttribute("data-status", info.status);
      el.innerHTML = info.status_html;
      // The task page: its read-only "Last execution" fields.
      Object.keys(info.cells || {}).forEach(function (name) {
        var value = document.querySelector(".field-" + name + " .readonly");
        if (value) { value.innerHTML = info.cells[name]; }
      });
      if (ACTIVE[before] && !ACTIVE[info.status]) {
        var notice = el.parentNode.querySelector(".tm-live-notice");
        if (notice) { notice.hidden = false; }
      }
      document.querySelectorAll('.tm-live-result[data-task="' + el.getAttribute("data-task") + '"]')
        .forEach(function (cell) { cell.innerHTML = info.result_html; });
    });
  }

  function schedule(delay) {
    window.setTimeout(poll, delay);
  }

  function poll() {
    var elements = liveElements();
    if (!elements.length) { return; }
    var delay = parseInt(elements[0].getAttribute("data-poll"), 10) || 2000;
    if (document.hidden) { schedule(delay); return; }
    if (!anyActive(elements) && ++idlePolls < IDLE_EVERY) { schedule(delay); return; }
    idlePolls = 0;
    var ids = elements.map(function (el) { return el.getAttribute("data-task"); });
    var url = elements[0].getAttribute("data-url") + "?ids=" + encodeURIComponent(ids.join(","));
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(apply)
      .catch(function () { /* keep the last known state; try again later */ })
      .then(function () { schedule(delay); });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { schedule(0); });
  } else {
    schedule(0);
  }
}());
