/* Live status of tasks in the admin: polls the task status endpoint and
   replaces the status badges, progress bars and result badges in place.
   Every HTML fragment comes from the server, already escaped. */
(function () {
  "use strict";
  var ACTIVE = { STARTED: true, SPOOLED: true, SCHEDULED: true };

  function liveElements() {
    return Array.prototype.slice.call(document.querySelectorAll(".tm-live[data-task]"));
  }

  function anyActive(elements) {
    return elements.some(function (el) { return ACTIVE[el.getAttribute("data-status")]; });
  }

  function apply(data) {
    liveElements().forEach(function (el) {
      var info = data.tasks[el.getAttribute("data-task")];
      if (!info) { return; }
      var before = el.getAttribute("data-status");
      el.setAttribute("data-status", info.status);
      el.innerHTML = info.status_html;
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
    if (document.hidden || !anyActive(elements)) { schedule(delay); return; }
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
