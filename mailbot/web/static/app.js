/* mailbot: the agents' page. Keyboard shortcuts, live updates (Server-Sent Events),
   a confirmation bar instead of browser dialogs. No framework, no external code.
   Everything works without this file too: it only adds speed. */
(function () {
  "use strict";

  var body = document.body;
  var page = body.dataset.page;
  var me = body.dataset.user || "";
  var csrf = body.dataset.csrf || "";
  var canSend = body.dataset.canSend === "yes";
  var lastEvent = parseInt(body.dataset.lastEvent || "0", 10) || 0;

  function $(id) { return document.getElementById(id); }
  function typing(target) {
    return target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
  }

  // ------------------------------------------------------------------ confirmation bar
  var pending = null;
  function ask(text, action) {
    pending = action;
    $("confirm-text").textContent = text;
    $("confirm").hidden = false;
    $("confirm-yes").focus();
  }
  function answer(yes) {
    var action = pending;
    pending = null;
    $("confirm").hidden = true;
    if (yes && action) { action(); }
  }
  if ($("confirm")) {
    $("confirm-yes").addEventListener("click", function () { answer(true); });
    $("confirm-no").addEventListener("click", function () { answer(false); });
  }
  // Forms with data-confirm (bulk approval) ask first.
  document.querySelectorAll("form[data-confirm]").forEach(bindConfirm);
  function bindConfirm(form) {
    form.addEventListener("submit", function (event) {
      if (form.dataset.confirmed === "yes") { return; }
      event.preventDefault();
      ask(form.dataset.confirm, function () { form.dataset.confirmed = "yes"; form.submit(); });
    });
  }

  // ------------------------------------------------------------------ help
  function help(show) { if ($("help")) { $("help").hidden = !show; } }
  if ($("help-button")) { $("help-button").addEventListener("click", function () { help(true); }); }
  if ($("help-close")) { $("help-close").addEventListener("click", function () { help(false); }); }

  // ------------------------------------------------------------------ posting without a form
  function post(url, fields) {
    var form = document.createElement("form");
    form.method = "post";
    form.action = url;
    fields.csrf = csrf;
    Object.keys(fields).forEach(function (name) {
      var input = document.createElement("input");
      input.type = "hidden";
      input.name = name;
      input.value = fields[name];
      form.appendChild(input);
    });
    document.body.appendChild(form);
    form.submit();
  }

  // ------------------------------------------------------------------ queue
  var selectedId = null;
  function rows() { return Array.prototype.slice.call(document.querySelectorAll("#queue-rows tr[data-id]")); }
  function select(row) {
    rows().forEach(function (r) { r.classList.toggle("selected", r === row); });
    if (row) {
      selectedId = row.dataset.id;
      row.scrollIntoView({ block: "nearest" });
    }
  }
  function move(step) {
    var all = rows();
    if (!all.length) { return; }
    var index = all.findIndex(function (r) { return r.dataset.id === selectedId; });
    index = index < 0 ? 0 : Math.max(0, Math.min(all.length - 1, index + step));
    select(all[index]);
  }
  function selectedRow() {
    return rows().find(function (r) { return r.dataset.id === selectedId; }) || null;
  }
  function queueKeys(event) {
    var row = selectedRow();
    switch (event.key) {
      case "j": move(1); return true;
      case "k": move(-1); return true;
      case "Enter": case "o": if (row) { location.href = row.dataset.href; } return !!row;
      case "e": if (row) { location.href = row.dataset.href + "#body"; } return !!row;
      case "r": if (row) { location.href = row.dataset.href + "#reject-reason"; } return !!row;
      case "a":
        if (!row || !canSend) { return false; }
        ask("Approve and send draft #" + row.dataset.id + "?", function () {
          post("/drafts/" + row.dataset.id + "/approve" + location.search,
               { version: row.dataset.version, seen: "0" });
        });
        return true;
      case "/": $("search").focus(); $("search").select(); return true;
    }
    return false;
  }
  if (page === "queue") {
    document.addEventListener("click", function (event) {
      var row = event.target.closest && event.target.closest("#queue-rows tr[data-id]");
      if (row && !event.target.closest("a")) { select(row); }
    });
    if (rows().length) { select(rows()[0]); }
  }

  var refreshTimer = null;
  var refreshing = false;
  function refreshQueue() {
    // Coalesce bursts of changes into one request.
    if (refreshTimer) { return; }
    refreshTimer = setTimeout(function () {
      refreshTimer = null;
      if (refreshing) { refreshQueue(); return; }
      refreshing = true;
      var known = {};
      rows().forEach(function (r) { known[r.dataset.id] = true; });
      fetch("/queue/rows" + location.search, { headers: { Accept: "text/html" }, credentials: "same-origin" })
        .then(function (response) {
          if (response.status === 401) { location.reload(); throw new Error("signed out"); }
          if (!response.ok) { throw new Error("HTTP " + response.status); }
          return response.text();
        })
        .then(function (html) {
          var live = $("queue-live");
          live.innerHTML = html;
          live.querySelectorAll("form[data-confirm]").forEach(bindConfirm);
          var head = live.querySelector(".queue-head");
          if (head && head.dataset.counts) {
            var counts = JSON.parse(head.dataset.counts);
            document.querySelectorAll(".tabs .count[data-count]").forEach(function (el) {
              if (el.dataset.count in counts) { el.textContent = counts[el.dataset.count]; }
            });
          }
          rows().forEach(function (r) { if (!known[r.dataset.id]) { r.classList.add("new"); } });
          var keep = selectedRow();
          select(keep || rows()[0] || null);
          document.title = document.title.replace(/\(\d+\)/, "(" + (head ? head.dataset.total : "0") + ")");
        })
        .catch(function () { /* the next change or the next reconnect tries again */ })
        .then(function () { refreshing = false; });
    }, 250);
  }

  // ------------------------------------------------------------------ draft page
  var draftId = body.dataset.draft;
  function draftKeys(event) {
    switch (event.key) {
      case "j": if (body.dataset.next) { location.href = body.dataset.next; } return true;
      case "k": if (body.dataset.prev) { location.href = body.dataset.prev; } return true;
      case "u": location.href = body.dataset.queue || "/"; return true;
      case "e": if ($("body")) { $("body").focus(); } return !!$("body");
      case "r": if ($("reject-reason")) { $("reject-reason").focus(); } return !!$("reject-reason");
      case "a":
        if (!$("approve-button")) { return false; }
        ask("Approve and send this reply to the customer?", function () { $("approve-button").click(); });
        return true;
      case "/": location.href = (body.dataset.queue || "/") + (body.dataset.queue && body.dataset.queue.indexOf("?") >= 0 ? "&" : "?") + "focus=search"; return true;
    }
    return false;
  }
  if (page === "draft") {
    var hash = location.hash.replace("#", "");
    if (hash && $(hash) && /^(body|reject-reason)$/.test(hash)) { $(hash).focus(); }
    if ($("body")) {
      $("body").addEventListener("keydown", function (event) {
        if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
          event.preventDefault();
          if ($("approve-button")) {
            ask("Approve and send this reply to the customer?", function () { $("approve-button").click(); });
          } else if ($("save-button")) {
            $("save-button").click();
          }
        }
      });
    }
  }
  if (page === "queue" && /(?:^|[?&])focus=search/.test(location.search) && $("search")) { $("search").focus(); }

  function draftChanged(changes) {
    var mine = changes.filter(function (c) { return String(c.draft) === draftId; });
    if (!mine.length) { return; }
    var last = mine[mine.length - 1];
    var banner = $("live-banner");
    if (last.state && $("draft-state")) {
      $("draft-state").textContent = last.state;
      $("draft-state").className = "state state-" + last.state;
    }
    if (last.actor === me && !/^(claimed|sent|failed|retry-scheduled)$/.test(last.action)) { return; }
    banner.textContent = "";
    banner.appendChild(document.createTextNode(
      "Draft #" + draftId + " was " + last.action.replace(/-/g, " ") + " by " + last.actor +
      (last.state ? " (now " + last.state + ")" : "") + ". "));
    var reload = document.createElement("button");
    reload.type = "button";
    reload.textContent = "Reload";
    reload.addEventListener("click", function () { location.reload(); });
    banner.appendChild(reload);
    banner.hidden = false;
  }

  // ------------------------------------------------------------------ live updates
  function connect() {
    if (!window.EventSource || !me || (page !== "queue" && page !== "draft")) { return; }
    var status = $("live-status");
    var source = new EventSource("/events?after=" + lastEvent);
    source.addEventListener("open", function () { if (status) { status.className = "live on"; status.title = "Live updates: on"; } });
    source.addEventListener("error", function () { if (status) { status.className = "live off"; status.title = "Live updates: reconnecting"; } });
    source.addEventListener("reload", function () { location.reload(); });
    source.addEventListener("change", function (event) {
      var changes = JSON.parse(event.data);
      if (event.lastEventId) { lastEvent = parseInt(event.lastEventId, 10) || lastEvent; }
      if (page === "queue") { refreshQueue(); }
      if (page === "draft") { draftChanged(changes); }
    });
  }
  connect();

  // ------------------------------------------------------------------ keyboard
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      if (pending) { answer(false); event.preventDefault(); return; }
      help(false);
      if (typing(event.target)) { event.target.blur(); }
      return;
    }
    if (pending && event.key === "Enter") { event.preventDefault(); answer(true); return; }
    if (typing(event.target) || event.ctrlKey || event.metaKey || event.altKey) { return; }
    if (event.key === "?") { help($("help") && $("help").hidden); event.preventDefault(); return; }
    var handled = page === "queue" ? queueKeys(event) : page === "draft" ? draftKeys(event) : false;
    if (handled) { event.preventDefault(); }
  });
})();
