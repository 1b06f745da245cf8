// A collection's page: files dropped or chosen are uploaded two at a time, each with its own
// progress bar, then followed until its ingestion job is done, or failed with the reason.
import { followJob } from "./http.js";

export function enhanceUploads() {
  const zone = document.getElementById("upload");
  const list = document.getElementById("uploads");
  if (!zone || !list) return;
  const input = document.getElementById("files");
  const maxBytes = Number(zone.dataset.max) * 1024 * 1024;
  const queue = [];
  let active = 0;

  function row(file) {
    const li = document.createElement("li");
    li.dataset.file = file.name;
    const name = document.createElement("span");
    name.textContent = file.name;
    const bar = document.createElement("progress");
    bar.max = 1;
    bar.value = 0;
    bar.setAttribute("aria-label", `Uploading ${file.name}`);
    const state = document.createElement("span");
    state.className = "state";
    state.textContent = "waiting";
    li.append(name, bar, state);
    list.append(li);
    return { li, bar, state };
  }

  function show(r, text, failed) {
    r.state.textContent = text;
    r.state.classList.toggle("failed", !!failed);
    r.li.dataset.state = failed ? "failed" : text.split(":")[0];
  }

  function message(xhr) {
    try {
      return JSON.parse(xhr.responseText).error.message;
    } catch {
      return `The server answered ${xhr.status}.`;
    }
  }

  async function follow(r, job) {
    job = await followJob(job, (j) => show(r, j.status === "running" ? "reading the file…" : "queued"));
    if (job.status === "done") show(r, `done: ${job.outcome}`);
    else if (job.status === "cancelled") show(r, "cancelled", true);
    else show(r, `failed: ${job.error}`, true);
  }

  // XMLHttpRequest, not fetch: only it reports upload progress.
  function send(file, r) {
    return new Promise((done) => {
      if (file.size > maxBytes) {
        show(r, `failed: larger than ${zone.dataset.max} MiB`, true);
        return done();
      }
      const xhr = new XMLHttpRequest();
      xhr.open("POST", `${zone.dataset.url}?source=${encodeURIComponent(file.name)}`);
      xhr.setRequestHeader("X-CSRF-Token", zone.dataset.csrf);
      xhr.upload.onprogress = (e) => {
        if (e.lengthComputable) {
          r.bar.max = e.total;
          r.bar.value = e.loaded;
        }
        show(r, "uploading");
      };
      xhr.onerror = () => {
        show(r, "failed: the upload broke off", true);
        done();
      };
      xhr.onload = async () => {
        r.bar.max = 1;
        r.bar.value = 1;
        if (xhr.status === 200) show(r, "done: unchanged");
        else if (xhr.status === 202) await follow(r, JSON.parse(xhr.responseText));
        else show(r, `failed: ${message(xhr)}`, true);
        done();
      };
      xhr.send(file);
    });
  }

  function pump() {
    while (active < 2 && queue.length) {
      const [file, r] = queue.shift();
      active += 1;
      send(file, r).then(() => {
        active -= 1;
        pump();
      });
    }
  }

  function add(files) {
    for (const file of files) queue.push([file, row(file)]);
    pump();
  }

  input.addEventListener("change", () => {
    add(input.files);
    input.value = "";
  });
  zone.addEventListener("dragover", (e) => {
    e.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    add(e.dataTransfer.files);
  });

  for (const button of document.querySelectorAll("button.cancel-job")) {
    button.addEventListener("click", async () => {
      const res = await fetch(`/api/jobs/${button.dataset.job}/cancel`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: "{}",
      });
      button.replaceWith(document.createTextNode(res.ok ? "cancelling" : "cannot cancel"));
    });
  }
}
