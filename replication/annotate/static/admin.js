// replication annotate: the admin page's "add annotators" form.
(function () {
  "use strict";
  var form = document.getElementById("add-form");
  if (!form) return;
  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var names = document.getElementById("add-names").value.split(/\s+/).filter(Boolean);
    var count = Number(document.getElementById("add-count").value || 0);
    fetch(form.dataset.api + "/annotators", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ names: names, count: count })
    }).then(function (r) { return r.json().then(function (j) { return { ok: r.ok, body: j }; }); })
      .then(function (res) {
        var list = document.getElementById("links");
        if (!res.ok) { var li = document.createElement("li"); li.textContent = res.body.detail || "failed"; list.appendChild(li); return; }
        res.body.annotators.forEach(function (a) {
          var li = document.createElement("li");
          li.textContent = a.annotator_id + ": " + a.link;
          list.appendChild(li);
        });
        document.getElementById("add-names").value = "";
      });
  });
})();
