/* Sellerdesk approval queue: keyboard shortcuts and small conveniences. Every action also works
   without this file (plain links and forms); this only makes them faster. */
(function () {
  "use strict";

  const page = document.body.dataset.page;

  function typing(el) {
    if (!el) return false;
    const tag = el.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable;
  }

  function click(selector) {
    const el = document.querySelector(selector);
    if (el && !el.disabled) {
      el.click();
      return true;
    }
    return false;
  }

  function focusEnd(el) {
    if (!el) return;
    el.focus();
    if (typeof el.setSelectionRange === "function" && el.value !== undefined) {
      const end = el.value.length;
      el.setSelectionRange(end, end);
    }
  }

  // A form submits once: a double click must not send a second, refused request.
  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (form.hasAttribute("hx-post")) return; // htmx forms stay usable after their swap
    if (form.dataset.submitted) {
      event.preventDefault();
      return;
    }
    form.dataset.submitted = "1";
  });

  // Shortcut help.
  const help = document.getElementById("help");
  function toggleHelp(show) {
    if (help) help.hidden = show === undefined ? !help.hidden : !show;
  }
  document.querySelectorAll("[data-help]").forEach((b) => b.addEventListener("click", () => toggleHelp(true)));
  document.querySelectorAll("[data-help-close]").forEach((b) => b.addEventListener("click", () => toggleHelp(false)));

  // Queue: a current row moved with j/k, opened with Enter, selected with x, approved with a.
  const rows = Array.from(document.querySelectorAll("#queue-rows tr.row"));
  let current = rows.length ? 0 : -1;

  function markCurrent() {
    rows.forEach((row, i) => row.classList.toggle("current", i === current));
    if (current >= 0) rows[current].scrollIntoView({ block: "nearest" });
  }

  function updateSelection() {
    const boxes = document.querySelectorAll('#queue-rows input[name="draft_ids"]');
    const chosen = Array.from(boxes).filter((b) => b.checked).length;
    const count = document.getElementById("selected-count");
    const button = document.getElementById("bulk-approve");
    if (count) count.textContent = String(chosen);
    if (button) button.disabled = chosen === 0;
    rows.forEach((row) => {
      const box = row.querySelector('input[name="draft_ids"]');
      row.classList.toggle("selected", !!(box && box.checked));
    });
  }

  if (page === "queue") {
    markCurrent();
    rows.forEach((row, i) => {
      row.addEventListener("click", (event) => {
        if (event.target.closest("input, a, button, label")) return;
        window.location.href = row.dataset.href;
      });
      row.addEventListener("mouseenter", () => {
        current = i;
        markCurrent();
      });
    });
    document.querySelectorAll('#queue-rows input[name="draft_ids"]').forEach((b) => b.addEventListener("change", updateSelection));
    const all = document.getElementById("select-all");
    if (all) {
      all.addEventListener("change", () => {
        document.querySelectorAll('#queue-rows input[name="draft_ids"]').forEach((b) => {
          b.checked = all.checked;
        });
        updateSelection();
      });
    }
    updateSelection();
  }

  function approveRow(row) {
    const form = document.getElementById("row-approve");
    if (!form || !row) return;
    const query = form.dataset.query;
    form.action = "/drafts/" + row.dataset.id + "/approve" + (query ? "?" + query : "");
    form.requestSubmit();
  }

  // Draft page: open the editor or the reject field straight from a queue shortcut (#edit, #reject).
  if (page === "draft") {
    const reply = document.getElementById("reply");
    const state = document.getElementById("edit-state");
    if (reply && state) {
      reply.addEventListener("input", () => {
        state.textContent = reply.value.trim() === (reply.dataset.original || "").trim() ? "" : "edited";
      });
      reply.addEventListener("keydown", (event) => {
        if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
          event.preventDefault();
          click("#approve-button");
        }
      });
    }
    if (window.location.hash === "#edit") focusEnd(reply);
    if (window.location.hash === "#reject") focusEnd(document.getElementById("reject-reason"));
  }

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      if (help && !help.hidden) toggleHelp(false);
      else if (typing(document.activeElement)) document.activeElement.blur();
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    const key = event.key;
    if (key === "?") {
      toggleHelp();
      event.preventDefault();
      return;
    }
    if (key === "u" && (click("#undo-button") || click("#undo-draft-button"))) {
      event.preventDefault();
      return;
    }
    if (page === "queue" && current >= 0) {
      const row = rows[current];
      if (key === "j" || key === "k") {
        current = Math.max(0, Math.min(rows.length - 1, current + (key === "j" ? 1 : -1)));
        markCurrent();
      } else if (key === "Enter" || key === "o") {
        window.location.href = row.dataset.href;
      } else if (key === "x") {
        const box = row.querySelector('input[name="draft_ids"]');
        if (box) {
          box.checked = !box.checked;
          updateSelection();
        }
      } else if (key === "a") {
        approveRow(row);
      } else if (key === "e") {
        window.location.href = row.dataset.href + "#edit";
      } else if (key === "r") {
        window.location.href = row.dataset.href + "#reject";
      } else {
        return;
      }
      event.preventDefault();
    } else if (page === "draft") {
      if (key === "j") click("#next-link");
      else if (key === "k") click("#prev-link");
      else if (key === "a") {
        if (!click("#approve-button")) {
          const gate = document.getElementById("money-gate");
          if (gate) gate.classList.add("shake");
        }
      } else if (key === "e") focusEnd(document.getElementById("reply"));
      else if (key === "r") focusEnd(document.getElementById("reject-reason"));
      else return;
      event.preventDefault();
    }
  });
})();
