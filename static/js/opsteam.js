// opsteam: small progressive enhancements. Every page works without this file.
(function () {
  "use strict";

  // Selects that submit their form when changed (team switcher, language).
  document.addEventListener("change", function (event) {
    var el = event.target;
    if (el.matches && el.matches("select[data-autosubmit]")) {
      el.form.requestSubmit ? el.form.requestSubmit() : el.form.submit();
    }
  });

  // Keyboard shortcuts: an element with data-shortcut="n" is clicked (or focused) when n is pressed
  // outside a text field.
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var t = event.target;
    if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
    var el = document.querySelector('[data-shortcut="' + CSS.escape(event.key) + '"]');
    if (!el) return;
    event.preventDefault();
    if (/^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName)) el.focus(); else el.click();
  });

  // Board: drag a card onto a column it may move to. The buttons in each card do the same without a mouse.
  var dragged = null;
  document.addEventListener("dragstart", function (event) {
    var card = event.target.closest && event.target.closest(".rcard[draggable]");
    if (!card) return;
    dragged = card;
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", card.id);
  });
  document.addEventListener("dragend", function () {
    dragged = null;
    document.querySelectorAll(".column.drop-ok").forEach(function (c) { c.classList.remove("drop-ok"); });
  });
  function allowedColumn(event) {
    var column = event.target.closest && event.target.closest(".column[data-stage]");
    if (!column || !dragged) return null;
    var targets = (dragged.dataset.targets || "").split(" ");
    return targets.indexOf(column.dataset.stage) >= 0 ? column : null;
  }
  document.addEventListener("dragover", function (event) {
    var column = allowedColumn(event);
    if (!column) return;
    event.preventDefault();
    column.classList.add("drop-ok");
  });
  document.addEventListener("dragleave", function (event) {
    var column = event.target.closest && event.target.closest(".column");
    if (column && !column.contains(event.relatedTarget)) column.classList.remove("drop-ok");
  });
  document.addEventListener("drop", function (event) {
    var column = allowedColumn(event);
    if (!column || !window.htmx) return;
    event.preventDefault();
    var card = dragged;
    var token = document.querySelector("input[name=csrfmiddlewaretoken]");
    window.htmx.ajax("POST", card.dataset.moveUrl, {
      target: "#" + card.id,
      swap: "outerHTML",
      values: {
        from_stage: card.dataset.from,
        to: column.dataset.stage,
        source: "board",
        next: location.pathname + location.search,
        csrfmiddlewaretoken: token ? token.value : ""
      }
    });
  });

  // Comments: @ suggests team members.
  function mentionSetup(textarea) {
    var data = document.getElementById("mention-names");
    if (!data) return;
    var people = JSON.parse(data.textContent);
    var list = document.createElement("ul");
    list.className = "mention-list";
    list.id = textarea.id + "-mentions";
    list.setAttribute("role", "listbox");
    list.hidden = true;
    textarea.parentNode.appendChild(list);
    textarea.setAttribute("aria-autocomplete", "list");
    textarea.setAttribute("aria-controls", list.id);
    var active = 0, matches = [], start = -1;

    function close() { list.hidden = true; matches = []; start = -1; }
    function choose(i) {
      var person = matches[i];
      if (!person) return;
      var before = textarea.value.slice(0, start);
      var after = textarea.value.slice(textarea.selectionStart);
      textarea.value = before + "@" + person.username + " " + after;
      var caret = before.length + person.username.length + 2;
      textarea.setSelectionRange(caret, caret);
      close();
      textarea.focus();
    }
    function show() {
      list.innerHTML = "";
      matches.forEach(function (person, i) {
        var li = document.createElement("li");
        li.setAttribute("role", "option");
        li.setAttribute("aria-selected", i === active ? "true" : "false");
        li.textContent = person.name === person.username ? "@" + person.username : person.name + " (@" + person.username + ")";
        li.addEventListener("mousedown", function (e) { e.preventDefault(); choose(i); });
        list.appendChild(li);
      });
      list.hidden = matches.length === 0;
    }
    textarea.addEventListener("input", function () {
      var upto = textarea.value.slice(0, textarea.selectionStart);
      var m = /(^|[^\w@])@([\w.+-]*)$/.exec(upto);
      if (!m) return close();
      start = upto.length - m[2].length - 1;
      var q = m[2].toLowerCase();
      matches = people.filter(function (p) {
        return p.username.toLowerCase().indexOf(q) === 0 || p.name.toLowerCase().indexOf(q) >= 0;
      }).slice(0, 8);
      active = 0;
      show();
    });
    textarea.addEventListener("keydown", function (e) {
      if (list.hidden) return;
      if (e.key === "ArrowDown") { active = (active + 1) % matches.length; show(); e.preventDefault(); }
      else if (e.key === "ArrowUp") { active = (active - 1 + matches.length) % matches.length; show(); e.preventDefault(); }
      else if (e.key === "Enter" || e.key === "Tab") { choose(active); e.preventDefault(); }
      else if (e.key === "Escape") { close(); }
    });
    textarea.addEventListener("blur", function () { setTimeout(close, 150); });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll(".mention-box textarea").forEach(mentionSetup);
  });
})();
