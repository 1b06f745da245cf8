// The models page's import: the chosen GGUF file is sent as it is with the session's form
// token in a header, its progress shown, then the server checks it; the page then reloads.
export function enhanceModels() {
  const box = document.getElementById("model-upload");
  if (!box) return;
  const input = document.getElementById("model-file");
  const name = document.getElementById("model-name");
  const button = document.getElementById("model-import");
  const bar = document.getElementById("model-progress");
  const status = document.getElementById("model-status");

  function say(text, failed) {
    status.textContent = text;
    status.classList.toggle("error", !!failed);
  }

  input.addEventListener("change", () => {
    const file = input.files[0];
    if (file && !name.value) name.value = file.name.replace(/\.gguf$/i, "").replace(/[^A-Za-z0-9._-]/g, "-");
  });

  button.addEventListener("click", () => {
    const file = input.files[0];
    if (!file) return say("Choose a GGUF file first.", true);
    if (!name.value.trim()) return say("Give the model a name.", true);
    const query = `name=${encodeURIComponent(name.value.trim())}&source=${encodeURIComponent(file.name)}`;
    // XMLHttpRequest, not fetch: only it reports upload progress.
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/admin/models/upload?${query}`);
    xhr.setRequestHeader("X-CSRF-Token", box.dataset.csrf);
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    button.disabled = true;
    bar.hidden = false;
    xhr.upload.onprogress = (e) => {
      if (!e.lengthComputable) return;
      bar.max = e.total;
      bar.value = e.loaded;
      const percent = Math.floor((100 * e.loaded) / e.total);
      say(percent < 100 ? `Uploading ${file.name}: ${percent}%` : `Checking ${file.name}…`);
    };
    xhr.onerror = () => {
      button.disabled = false;
      say("The upload broke off.", true);
    };
    xhr.onload = () => {
      button.disabled = false;
      if (xhr.status === 201) {
        location.assign("/admin/models?done=imported");
        return;
      }
      let message = `The server answered ${xhr.status}.`;
      try {
        message = JSON.parse(xhr.responseText).error.message;
      } catch {}
      say(message, true);
    };
    say(`Uploading ${file.name}…`);
    xhr.send(file);
  });
}
