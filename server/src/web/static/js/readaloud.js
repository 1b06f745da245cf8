// Read aloud: each answer gets a button that has the installation's speech model (a provider's,
// through the server, under the same quotas and audit as everything else) speak its text.
// Only where the page names a speech model the person may use; one answer speaks at a time.
import { errorText } from "./http.js";
import { button } from "./replies.js";

/// The most characters one request speaks (the server's limit).
const MAX_CHARS = 4096;

let playing = null;

function stopPlaying() {
  if (!playing) return;
  playing.audio.pause();
  URL.revokeObjectURL(playing.url);
  playing.button.textContent = "Read aloud";
  playing.button.setAttribute("aria-pressed", "false");
  playing.button.dataset.state = "";
  playing = null;
}

async function speak(root, li, button, status) {
  if (playing?.button === button) {
    stopPlaying();
    return;
  }
  stopPlaying();
  const text = li.querySelector(".body")?.innerText.trim().slice(0, MAX_CHARS);
  if (!text) return;
  button.dataset.state = "loading";
  button.disabled = true;
  status.textContent = "Getting the audio…";
  try {
    const res = await fetch("/v1/audio/speech", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": root.dataset.csrf },
      body: JSON.stringify({
        model: root.dataset.speechModel, voice: root.dataset.speechVoice, input: text, response_format: "mp3",
      }),
    });
    if (!res.ok) throw new Error(await errorText(res));
    const url = URL.createObjectURL(await res.blob());
    const audio = new Audio(url);
    playing = { audio, url, button };
    audio.addEventListener("ended", stopPlaying);
    button.textContent = "Stop reading";
    button.setAttribute("aria-pressed", "true");
    button.dataset.state = "playing";
    status.textContent = "";
    await audio.play();
  } catch (err) {
    stopPlaying();
    button.dataset.state = "failed";
    status.textContent = `Cannot read this aloud: ${err.message}`;
  } finally {
    button.disabled = false;
  }
}

/// Adds the button to the answers in `scope` that have none yet.
export function addReadAloud(scope) {
  const root = document.getElementById("chat");
  if (!root?.dataset.speechModel) return;
  const answers = scope.matches?.(".msg.assistant") ? [scope] : scope.querySelectorAll(".msg.assistant");
  for (const li of answers) {
    // Nothing to hear in a failed answer or a drawing's caption.
    if (li.querySelector(".read-aloud, figure.drawn") || li.classList.contains("failed")) continue;
    const status = document.createElement("span");
    status.className = "read-aloud-status muted";
    status.setAttribute("role", "status");
    const read = button("read-aloud link", "Read aloud", () => speak(root, li, read, status));
    read.setAttribute("aria-pressed", "false");
    li.append(read, status);
  }
}
