/* Dashboard live refresh: poll the summary endpoint every few seconds and update counts, charts,
   tables and the newest tickets in place (no page reload). Charts are drawn by the vendored Chart.js. */
(function () {
  "use strict";

  var script = document.currentScript;
  var summaryUrl = script.getAttribute("data-summary-url");
  var refreshMs = parseInt(script.getAttribute("data-refresh-ms"), 10) || 3000;
  var initial = JSON.parse(document.getElementById("summary-data").textContent);

  var live = document.getElementById("live");
  var liveText = document.getElementById("live-text");
  var form = document.getElementById("filters");
  var reduceMotion = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;

  // Fixed colours per category, so a colour always means the same thing (and matches the badges).
  var SENTIMENT_COLOURS = { negative: "#c8372d", neutral: "#7b8794", positive: "#1f8a48", unclassifiable: "#c7ccd3" };
  var STATUS_COLOURS = { open: "#0b5cad", replied: "#7c4dcc", resolved: "#1f8a48", failed: "#c8372d" };
  var TOPIC_COLOUR = "#0b5cad";

  var lastVersion = initial.version;
  var timer = null;
  var failures = 0;
  var inFlight = null;

  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.color = "#4b5563";
  Chart.defaults.maintainAspectRatio = false;
  if (reduceMotion) { Chart.defaults.animation = false; }

  function statusLabel(s) { return initial.labels.status[s] || s; }
  function topicLabel(t) { return initial.labels.topic[t] || t; }

  var statusChart = new Chart(document.getElementById("chart-status"), {
    type: "doughnut",
    data: statusData(initial),
    options: { plugins: { legend: { position: "bottom" } }, cutout: "55%" }
  });
  var sentimentChart = new Chart(document.getElementById("chart-sentiment"), {
    type: "bar",
    data: sentimentData(initial),
    options: {
      plugins: { legend: { position: "bottom" } },
      scales: { x: { stacked: true, ticks: { maxRotation: 0, autoSkip: true } },
                y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } }
    }
  });
  var topicChart = new Chart(document.getElementById("chart-topic"), {
    type: "bar",
    data: topicData(initial),
    options: {
      indexAxis: "y",
      plugins: { legend: { display: false } },
      scales: { x: { beginAtZero: true, ticks: { precision: 0 } }, y: { ticks: { autoSkip: false } } }
    }
  });

  function statusData(s) {
    return {
      labels: s.by_status.map(function (r) { return statusLabel(r.status); }),
      datasets: [{
        label: "Tickets",
        data: s.by_status.map(function (r) { return r.count; }),
        backgroundColor: s.by_status.map(function (r) { return STATUS_COLOURS[r.status] || "#b26b00"; }),
        borderWidth: 1
      }]
    };
  }
  function sentimentData(s) {
    var sot = s.sentiment_over_time;
    return {
      labels: sot.labels,
      datasets: Object.keys(sot.series).map(function (k) {
        return { label: k.charAt(0).toUpperCase() + k.slice(1), data: sot.series[k],
                 backgroundColor: SENTIMENT_COLOURS[k] || "#999" };
      })
    };
  }
  // Long topic names on two lines, so the axis never cuts them off on a narrow panel.
  function wrapLabel(text) {
    if (text.length <= 16) { return text; }
    var words = text.split(" "), half = Math.ceil(words.length / 2);
    return [words.slice(0, half).join(" "), words.slice(half).join(" ")];
  }
  function topicData(s) {
    return {
      labels: s.by_topic.map(function (r) { return wrapLabel(topicLabel(r.topic)); }),
      datasets: [{ label: "Tickets", data: s.by_topic.map(function (r) { return r.count; }), backgroundColor: TOPIC_COLOUR }]
    };
  }

  // Replace a chart's data in place (keeps the canvas; 'none' = no animation on refresh). A running
  // animation (the first draw takes a second) is stopped first: left running, it would carry the
  // bars on to its old targets after this update.
  function setChartData(chart, data) {
    chart.stop();
    chart.data.labels = data.labels;
    data.datasets.forEach(function (ds, i) {
      if (chart.data.datasets[i]) { Object.assign(chart.data.datasets[i], ds); }
      else { chart.data.datasets.push(ds); }
    });
    chart.data.datasets.length = data.datasets.length;
    chart.update("none");
  }

  function fillTable(tbodyId, rows) {
    var tbody = document.getElementById(tbodyId);
    if (!tbody) { return; }
    var frag = document.createDocumentFragment();
    rows.forEach(function (cells) {
      var tr = document.createElement("tr");
      cells.forEach(function (c, i) {
        var td = document.createElement("td");
        if (i > 0) { td.className = "num"; }
        td.textContent = c;
        tr.appendChild(td);
      });
      frag.appendChild(tr);
    });
    tbody.replaceChildren(frag);
  }

  function lookup(obj, path) {
    return path.split(".").reduce(function (o, k) { return o == null ? undefined : o[k]; }, obj);
  }

  // The flood guard's reasons under the budget panel (same markup as the template's).
  function fillFloodReasons(budget) {
    var box = document.getElementById("flood-reasons");
    if (!box || !budget) { return; }
    var reasons = budget.flood_reasons || [];
    if (!reasons.length) {
      var p = document.createElement("p");
      p.className = "empty";
      p.textContent = "No tweets held back.";
      box.replaceChildren(p);
      return;
    }
    var table = document.createElement("table");
    var head = table.createTHead().insertRow();
    [["Reason", ""], ["Tweets held back", "num"]].forEach(function (h) {
      var th = document.createElement("th");
      th.scope = "col";
      if (h[1]) { th.className = h[1]; }
      th.textContent = h[0];
      head.appendChild(th);
    });
    var body = table.createTBody();
    reasons.forEach(function (r) {
      var tr = body.insertRow();
      // The reason names a customer's handle: isolated (<bdi>) like every user text on the pages.
      var bdi = document.createElement("bdi");
      bdi.textContent = r.reason;
      tr.insertCell().appendChild(bdi);
      var n = tr.insertCell();
      n.className = "num";
      n.textContent = r.count;
    });
    box.replaceChildren(table);
  }

  function render(s) {
    var statusCounts = {};
    s.by_status.forEach(function (r) { statusCounts[r.status] = r.count; });
    var view = { totals: s.totals, status: statusCounts, budget: s.budget };
    document.querySelectorAll("[data-kpi]").forEach(function (el) {
      var v = lookup(view, el.getAttribute("data-kpi"));
      if (v !== undefined && v !== null && el.textContent !== String(v)) { el.textContent = v; }
    });
    setChartData(statusChart, statusData(s));
    setChartData(sentimentChart, sentimentData(s));
    setChartData(topicChart, topicData(s));
    fillTable("t-status", s.by_status.map(function (r) { return [statusLabel(r.status), r.count]; }));
    fillTable("t-topic", s.by_topic.map(function (r) { return [topicLabel(r.topic), r.count]; }));
    fillTable("t-lang", (s.by_lang || []).map(function (r) { return [r.lang, r.count]; }));
    var sot = s.sentiment_over_time;
    fillTable("t-sentiment", sot.labels.map(function (label, i) {
      return [label].concat(Object.keys(sot.series).map(function (k) { return sot.series[k][i]; }));
    }));
    document.getElementById("bucket-note").textContent = sot.bucket_text;
    fillFloodReasons(s.budget);
    // The server renders the newest tickets with the same template as the first page load (escaped HTML).
    document.getElementById("newest").innerHTML = s.newest_html;
  }

  function setLive(state, text) {
    live.classList.remove("stale", "paused");
    if (state) { live.classList.add(state); }
    liveText.textContent = text;
  }

  function currentQuery() {
    var params = new URLSearchParams();
    new FormData(form).forEach(function (v, k) { if (v) { params.set(k, v); } });
    return params.toString();
  }

  function schedule(ms) {
    clearTimeout(timer);
    timer = setTimeout(refresh, ms);
  }

  function refresh() {
    if (document.hidden) { setLive("paused", "Paused while this tab is hidden"); return; }
    if (inFlight) { inFlight.abort(); }
    var ctrl = inFlight = new AbortController();
    var q = currentQuery();
    fetch(summaryUrl + (q ? "?" + q : ""), { headers: { Accept: "application/json" }, credentials: "same-origin", signal: ctrl.signal })
      .then(function (r) {
        if (r.status === 401 || r.status === 403) { window.location.reload(); throw new Error("signed out"); }
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.json();
      })
      .then(function (s) {
        failures = 0;
        if (s.version !== lastVersion) { lastVersion = s.version; render(s); }
        setLive(null, "Live · updated " + new Date().toLocaleTimeString());
        schedule(refreshMs);
      })
      .catch(function (err) {
        if (err.name === "AbortError") { return; }
        failures += 1;
        setLive("stale", "Connection lost; retrying…");
        schedule(Math.min(refreshMs * Math.pow(2, failures), 60000));
      });
  }

  // Filters apply at once with JavaScript (the Apply button still works without it).
  form.addEventListener("change", function () {
    var q = currentQuery();
    history.replaceState(null, "", window.location.pathname + (q ? "?" + q : ""));
    lastVersion = null;
    refresh();
  });
  form.addEventListener("submit", function (e) { e.preventDefault(); form.dispatchEvent(new Event("change")); });
  document.getElementById("f-clear").addEventListener("click", function (e) {
    e.preventDefault();
    form.reset();
    form.querySelectorAll("select").forEach(function (sel) { sel.value = ""; });
    form.dispatchEvent(new Event("change"));
  });
  document.addEventListener("visibilitychange", function () { if (!document.hidden) { refresh(); } });

  schedule(refreshMs);
})();
