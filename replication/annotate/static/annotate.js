// replication annotate: the task page. Click or keyboard to select, Enter to submit; the next task loads in place.
(function () {
  "use strict";
  var state = JSON.parse(document.getElementById("state").textContent);
  var api = state.api;
  var grid = document.getElementById("grid");
  var submitBtn = document.getElementById("submit");
  var toastEl = document.getElementById("toast");
  var task = null, selected = new Set(), focus = 0, busy = false, toastTimer = null;

  function $(id) { return document.getElementById(id); }

  function toast(text, isError) {
    toastEl.textContent = text;
    toastEl.className = "toast show" + (isError ? " error" : "");
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { toastEl.className = "toast"; }, isError ? 4000 : 1400);
  }

  function tiles() { return grid.children; }

  function updateCount() {
    $("n-selected").textContent = selected.size;
  }

  function setFocus(i, scroll) {
    var t = tiles();
    if (!t.length) return;
    focus = Math.max(0, Math.min(t.length - 1, i));
    for (var k = 0; k < t.length; k++) t[k].classList.toggle("focus", k === focus);
    if (scroll) t[focus].scrollIntoView({ block: "nearest" });
  }

  function toggle(i) {
    var tile = tiles()[i];
    if (!tile) return;
    if (selected.has(i)) selected.delete(i); else selected.add(i);
    tile.classList.toggle("on", selected.has(i));
    tile.setAttribute("aria-selected", selected.has(i) ? "true" : "false");
    updateCount();
  }

  function render(data) {
    task = data.task;
    selected = new Set();
    grid.textContent = "";
    grid.classList.remove("busy");
    $("progress").textContent = data.submitted + (data.submitted === 1 ? " task" : " tasks") + " submitted";
    if (!task) {
      document.querySelector(".bar").hidden = true;
      grid.hidden = true;
      $("done").hidden = false;
      return;
    }
    $("cls-name").textContent = task.class_names[0];
    $("cls-gloss").textContent = task.gloss ? task.gloss.charAt(0).toUpperCase() + task.gloss.slice(1) + "." : "";
    $("cls-syn").textContent = task.class_names.length > 1 ? "Also called: " + task.class_names.slice(1).join(", ") + "." : "";
    document.title = "Select: " + task.class_names[0];
    $("n-images").textContent = task.images.length;
    task.images.forEach(function (url, i) {
      var tile = document.createElement("div");
      tile.className = "tile";
      tile.setAttribute("role", "option");
      tile.setAttribute("aria-selected", "false");
      tile.dataset.pos = i;
      var img = document.createElement("img");
      img.src = url; img.alt = "image " + (i + 1); img.draggable = false; img.decoding = "async";
      var check = document.createElement("span"); check.className = "check"; check.textContent = "\u2713";
      var num = document.createElement("span"); num.className = "num"; num.textContent = i + 1;
      tile.appendChild(img); tile.appendChild(check); tile.appendChild(num);
      grid.appendChild(tile);
    });
    updateCount();
    layout();
    setFocus(0, false);
    window.scrollTo(0, 0);
  }

  // Largest square tiles that fit the whole task on the screen below the header; when they would be smaller
  // than MIN_TILE pixels the grid falls back to the stylesheet's columns and the page scrolls.
  var MIN_TILE = 124, GAP = 10;
  function layout() {
    var n = tiles().length;
    if (!n) return;
    var width = grid.clientWidth, height = window.innerHeight - document.querySelector(".bar").offsetHeight
      - document.querySelector(".help").offsetHeight - 36;
    var best = 0, bestCols = 0;
    for (var cols = 3; cols <= 16; cols++) {
      var rows = Math.ceil(n / cols);
      var size = Math.floor(Math.min((width - GAP * (cols - 1)) / cols, (height - GAP * (rows - 1)) / rows));
      if (size > best) { best = size; bestCols = cols; }
    }
    grid.style.gridTemplateColumns = best >= MIN_TILE ? "repeat(" + bestCols + ", " + best + "px)" : "";
  }
  window.addEventListener("resize", layout);

  function columns() {
    var t = tiles();
    if (t.length < 2) return 1;
    var top = t[0].offsetTop, n = 0;
    while (n < t.length && t[n].offsetTop === top) n++;
    return Math.max(1, n);
  }

  function request(method, url, body) {
    return fetch(url, {
      method: method, credentials: "same-origin", cache: "no-store",
      headers: body ? { "Content-Type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) { return { status: r.status, body: j }; });
    });
  }

  function submit() {
    if (busy || !task) return;
    busy = true;
    submitBtn.disabled = true;
    grid.classList.add("busy");
    var picked = Array.from(selected).sort(function (a, b) { return a - b; });
    request("POST", api + "/submit", { assignment_id: task.assignment_id, nonce: task.nonce, selected: picked })
      .then(function (res) {
        if (res.status === 200) {
          toast("Saved \u2713 (" + picked.length + " selected)");
          render(res.body);
        } else if (res.status === 409) {  // submitted already (a retry) or expired: move on
          toast(res.body.detail || "This task is closed", true);
          return request("GET", api + "/next").then(function (n) { if (n.status === 200) render(n.body); });
        } else {
          grid.classList.remove("busy");
          toast((res.body && res.body.detail) ? String(res.body.detail) : "Could not save (" + res.status + "); try again", true);
        }
      })
      .catch(function () {
        grid.classList.remove("busy");
        toast("No connection to the server: your selection is kept; press Enter to try again", true);
      })
      .then(function () { busy = false; submitBtn.disabled = false; });
  }

  grid.addEventListener("click", function (e) {
    var tile = e.target.closest(".tile");
    if (!tile) return;
    var i = Number(tile.dataset.pos);
    toggle(i);
    setFocus(i, false);
  });
  submitBtn.addEventListener("click", submit);
  document.addEventListener("keydown", function (e) {
    if (e.altKey || e.ctrlKey || e.metaKey || !task) return;
    var cols = columns(), handled = true;
    switch (e.key) {
      case "ArrowRight": setFocus(focus + 1, true); break;
      case "ArrowLeft": setFocus(focus - 1, true); break;
      case "ArrowDown": setFocus(focus + cols, true); break;
      case "ArrowUp": setFocus(focus - cols, true); break;
      case " ": case "x": case "X": toggle(focus); break;
      case "Enter": submit(); break;
      default: handled = false;
    }
    if (handled) e.preventDefault();
  });
  render(state);
})();
