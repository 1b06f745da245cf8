// A table wider than the screen scrolls in its frame; keyboard users reach the frame to scroll
// it (focusable, and named after the table's heading), where it scrolls.
export function enhanceTables() {
  const frames = document.querySelectorAll(".table-wrap");
  if (!frames.length) return;
  const mark = () => {
    for (const frame of frames) {
      const scrolls = frame.scrollWidth > frame.clientWidth + 1;
      if (scrolls && !frame.hasAttribute("tabindex")) {
        const heading = frame.closest("section")?.querySelector("h2, h1");
        frame.setAttribute("tabindex", "0");
        frame.setAttribute("role", "region");
        frame.setAttribute("aria-label", heading ? `${heading.textContent.trim()} (scrolls sideways)` : "Table (scrolls sideways)");
      } else if (!scrolls && frame.getAttribute("role") === "region") {
        frame.removeAttribute("tabindex");
        frame.removeAttribute("role");
        frame.removeAttribute("aria-label");
      }
    }
  };
  mark();
  window.addEventListener("resize", mark);
}
