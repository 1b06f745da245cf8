// The drawer on narrow screens: Menu opens the sidebar, Escape, the backdrop or "Close menu"
// closes it and gives the focus back. Without the script the Menu link still opens it (#sidebar).
export function enhanceNav() {
  // Ctrl+Shift+O starts a new chat from anywhere a chat can be had.
  const newChat = document.querySelector(".new-chat");
  document.addEventListener("keydown", (event) => {
    if (newChat && event.ctrlKey && event.shiftKey && (event.key === "O" || event.key === "o")) {
      event.preventDefault();
      location.href = newChat.href;
    }
  });
  const shell = document.querySelector(".shell");
  const button = document.querySelector(".menu-button");
  const sidebar = document.getElementById("sidebar");
  if (!shell || !button || !sidebar) return;
  const close = sidebar.querySelector(".close-menu");

  function set(open) {
    shell.classList.toggle("drawer-open", open);
    button.setAttribute("aria-expanded", String(open));
    if (open) {
      (sidebar.querySelector("nav a") || close)?.focus();
    } else {
      if (location.hash === "#sidebar") history.replaceState(null, "", location.pathname + location.search);
      button.focus();
    }
  }

  button.addEventListener("click", (event) => {
    event.preventDefault();
    set(!shell.classList.contains("drawer-open"));
  });
  close?.addEventListener("click", (event) => {
    event.preventDefault();
    set(false);
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && shell.classList.contains("drawer-open")) set(false);
  });
  // A click on the backdrop (the shell's ::after, outside the drawer) closes it.
  shell.addEventListener("click", (event) => {
    if (shell.classList.contains("drawer-open") && !sidebar.contains(event.target) && event.target !== button) set(false);
  });
}
