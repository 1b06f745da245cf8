// The theme page's logo and favicon: the chosen file is sent as it is (PUT, with the session's
// form token in a header), then the page reloads to show it everywhere.
import { errorText } from "./http.js";

const TYPES = { svg: "image/svg+xml", png: "image/png" };

export function enhanceTheme() {
  for (const box of document.querySelectorAll(".theme-image")) {
    const input = box.querySelector("input[type=file]");
    const status = box.querySelector(".upload-status");
    input.addEventListener("change", async () => {
      const file = input.files[0];
      if (!file) return;
      const type = file.type || TYPES[file.name.split(".").pop().toLowerCase()] || "application/octet-stream";
      status.textContent = `Uploading ${file.name}…`;
      try {
        const res = await fetch(`/admin/theme/${box.dataset.image}`, {
          method: "PUT",
          headers: { "Content-Type": type, "X-CSRF-Token": box.dataset.csrf },
          body: file,
        });
        if (!res.ok) throw new Error(await errorText(res));
        status.textContent = "Saved.";
        location.reload();
      } catch (e) {
        status.textContent = e.message;
        status.classList.add("error");
      }
    });
  }
}
