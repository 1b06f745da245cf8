// Every page: ask before actions that lock someone out, and move focus to the first error so
// keyboard and screen-reader users hear it.
export function enhanceForms() {
  for (const button of document.querySelectorAll("button.danger")) {
    button.addEventListener("click", (event) => {
      const row = button.closest("[data-user]");
      const who = row ? row.dataset.user : "";
      const what = button.textContent.trim().toLowerCase();
      if (!window.confirm(`Really ${what}${who ? " " + who : ""}?`)) event.preventDefault();
    });
  }
  const alert = document.querySelector('[role="alert"]');
  if (alert) {
    alert.setAttribute("tabindex", "-1");
    alert.focus();
  }
}
