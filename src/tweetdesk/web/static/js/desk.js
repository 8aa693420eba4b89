/* The desk on the agent view and the inbox: first-response countdowns, canned replies into the reply box,
   and (agent view) light polling of who else has the ticket open and whether it changed. */
(function () {
  "use strict";

  function minutes(s) {
    var m = Math.abs(s) / 60;
    return m < 120 ? Math.round(m) + " min" : (m / 60).toFixed(1) + " h";
  }

  // Timers follow the service's clock, not this computer's (which may be minutes off): the offset at page load.
  var served = document.querySelector('meta[name="server-now"]');
  var skew = served ? (Date.parse(served.getAttribute("content")) - Date.now()) || 0 : 0;

  function tick() {
    var now = Date.now() + skew;
    document.querySelectorAll("[data-due]").forEach(function (el) {
      var left = (Date.parse(el.getAttribute("data-due")) - now) / 1000;
      var text = left < 0 ? "overdue by " + minutes(left) : "due in " + minutes(left);
      if (el.textContent !== text) { el.textContent = text; }
      el.classList.toggle("overdue", left < 0);
      var row = el.closest("[data-ticket]");
      if (row) { row.classList.toggle("is-overdue", left < 0); }
    });
  }
  tick();
  setInterval(tick, 1000);

  // A refused reply comes back as the page itself: bring its reason (and the kept text under it) into view.
  var refusal = document.getElementById("reply-error");
  if (refusal) { refusal.scrollIntoView({block: "center"}); }

  document.querySelectorAll(".canned-use").forEach(function (b) {
    b.addEventListener("click", function () {
      var box = document.getElementById("reply-text");
      box.value = b.getAttribute("data-text");
      box.focus();
    });
  });

  var presence = document.getElementById("presence");
  if (!presence) { return; }
  var url = presence.getAttribute("data-url");
  var seen = presence.getAttribute("data-seen");
  var interval = parseInt(presence.getAttribute("data-interval"), 10) || 5000;
  var others = document.getElementById("presence-others");
  var changed = document.getElementById("presence-changed");

  function poll() {
    fetch(url + "?seen=" + encodeURIComponent(seen), { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (d) {
        if (!d) { return; }
        var who = d.others.length ? "Also open by " + d.others.join(", ") : "";
        if (others.textContent !== who) { others.textContent = who; }
        var note = d.changed ? "This ticket changed since you opened it: " + d.changes.join("; ") + ". Reload before you answer." : "";
        if (changed.textContent !== note) { changed.textContent = note; }
      })
      .catch(function () { /* next poll */ })
      .then(function () { setTimeout(poll, interval); });
  }
  setTimeout(poll, interval);
})();
