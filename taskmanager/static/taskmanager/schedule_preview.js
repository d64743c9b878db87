/* Schedule preview on the task page: while the user edits the scheduling
   fields, ask the server for the next runs and show them in place.
   The HTML comes from the server's template, already escaped; nothing is
   saved (GET on admin/taskmanager/task/schedule-preview/). */
(function () {
  "use strict";
  var FIELDS = ["scheduling_0", "scheduling_1", "repetition_period", "repetition_rate"];
  var DELAY_MS = 300;

  function init() {
    var box = document.querySelector(".tm-schedule-preview[data-url]");
    if (!box) { return; }
    var form = box.closest("form");
    if (!form) { return; }
    var timer = null;
    var last = null;
    var pending = null;

    function values() {
      var params = new URLSearchParams();
      FIELDS.forEach(function (name) {
        var input = form.elements.namedItem(name);
        if (input) { params.append(name, input.value); }
      });
      // The task being edited: its status decides what saving would do.
      if (box.getAttribute("data-task")) { params.append("task", box.getAttribute("data-task")); }
      return params.toString();
    }

    function refresh() {
      var query = values();
      if (query === last) { return; }
      last = query;
      if (pending) { pending.abort(); }
      pending = new AbortController();
      fetch(box.getAttribute("data-url") + "?" + query, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
        signal: pending.signal
      })
        .then(function (response) {
          if (!response.ok) { throw new Error("HTTP " + response.status); }
          return response.json();
        })
        .then(function (data) { box.innerHTML = data.html; })
        .catch(function () { /* keep the last preview; the next change tries again */ });
    }

    function later() {
      window.clearTimeout(timer);
      timer = window.setTimeout(refresh, DELAY_MS);
    }

    last = values();
    form.addEventListener("input", later);
    form.addEventListener("change", later);
    // The admin's calendar and clock shortcuts set the inputs' values
    // without firing events: also compare the values now and then.
    window.setInterval(function () { if (values() !== last) { refresh(); } }, 1000);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
}());
