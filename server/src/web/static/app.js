// Small progressive enhancements; every page works without JavaScript.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // Ask before actions that lock someone out.
  for (const button of document.querySelectorAll("button.danger")) {
    button.addEventListener("click", (event) => {
      const row = button.closest("[data-user]");
      const who = row ? row.dataset.user : "";
      const what = button.textContent.trim().toLowerCase();
      if (!window.confirm(`Really ${what}${who ? " " + who : ""}?`)) event.preventDefault();
    });
  }
  // Move focus to the first error so keyboard and screen-reader users hear it.
  const alert = document.querySelector('[role="alert"]');
  if (alert) { alert.setAttribute("tabindex", "-1"); alert.focus(); }
});
