/* Live follow of a running report's log (admin/taskmanager/report/log.html).

   While the run goes on and the page shows the end of the log, poll the
   follow endpoint about once a second with the number of the last line
   shown, append the lines it returns and update the counts and the status
   line; stop once the server says the run has finished. Line text arrives
   as HTML the server escaped (with its safe links); everything else is set
   as text. */
(function () {
  "use strict";
  var INTERVAL = 1000;
  var RETRY = 5000;

  function text(id, value) {
    var el = document.getElementById(id);
    if (el !== null && value !== undefined && value !== null) { el.textContent = String(value); }
  }

  function cell(row, content) {
    var td = document.createElement("td");
    td.textContent = content;
    row.appendChild(td);
    return td;
  }

  function lineRow(line) {
    var row = document.createElement("tr");
    row.className = line.css;
    row.id = "L" + line.seq;
    var number = cell(row, "");
    number.className = "tm-log-seq";
    var anchor = document.createElement("a");
    anchor.setAttribute("href", line.url);
    anchor.textContent = String(line.seq);
    number.appendChild(anchor);
    var time = cell(row, "");
    time.className = "tm-log-time";
    var stamp = document.createElement("time");
    stamp.setAttribute("datetime", line.datetime);
    stamp.textContent = line.time;
    time.appendChild(stamp);
    cell(row, line.level);
    cell(row, line.stream);
    var message = cell(row, "");
    var pre = document.createElement("pre");
    pre.innerHTML = line.html; // escaped by the server (logviews.render_text)
    message.appendChild(pre);
    return row;
  }

  function start(table) {
    var body = table.tBodies[0];
    var status = document.getElementById("tm-log-status");
    var cursor = parseInt(table.getAttribute("data-cursor"), 10) || 0;
    var maxRows = Math.max(parseInt(table.getAttribute("data-max-rows"), 10) || 500, 100) * 4;
    var url = table.getAttribute("data-follow-url");

    function nearBottom() {
      return window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
    }

    function append(lines) {
      if (!lines.length) { return; }
      var follow = nearBottom();
      var empty = body.querySelector("tr.tm-log-empty");
      if (empty !== null) { body.removeChild(empty); }
      var fragment = document.createDocumentFragment();
      lines.forEach(function (line) { fragment.appendChild(lineRow(line)); });
      body.appendChild(fragment);
      // Keep the page light on a long run: earlier lines stay reachable
      // through the pager links.
      while (body.rows.length > maxRows) { body.removeChild(body.rows[0]); }
      if (follow) { window.scrollTo(0, document.body.scrollHeight); }
    }

    function poll() {
      var sep = url.indexOf("?") < 0 ? "?" : "&";
      fetch(url + sep + "after=" + encodeURIComponent(cursor), {
        credentials: "same-origin",
        headers: { Accept: "application/json" }
      })
        .then(function (response) {
          if (response.status === 404 || response.status === 403) {
            // Deleted (retention, its task deleted) or no longer allowed: stop.
            if (status !== null) {
              status.textContent = table.getAttribute("data-gone-text");
              status.classList.remove("tm-log-running");
            }
            table.setAttribute("data-follow", "gone");
            return null;
          }
          if (!response.ok) { throw new Error("HTTP " + response.status); }
          return response.json();
        })
        .then(function (data) {
          if (data === null) { return; }
          append(data.lines);
          cursor = data.cursor;
          table.setAttribute("data-cursor", String(cursor));
          text("tm-log-lines", data.counts.lines);
          text("tm-log-warnings", data.counts.warnings);
          text("tm-log-errors", data.counts.errors);
          text("tm-log-result", data.result);
          if (status !== null) {
            status.textContent = data.status;
            status.classList.toggle("tm-log-running", data.running);
          }
          if (data.more) {
            window.setTimeout(poll, 0);
          } else if (data.running) {
            window.setTimeout(poll, INTERVAL);
          } else {
            table.setAttribute("data-follow", "done");
          }
        })
        .catch(function () {
          // The server may be restarting: keep what is shown, try again later.
          window.setTimeout(poll, RETRY);
        });
    }

    window.setTimeout(poll, INTERVAL);
  }

  function init() {
    var table = document.getElementById("tm-log");
    if (table !== null && table.getAttribute("data-follow") === "1") { start(table); }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
}());
