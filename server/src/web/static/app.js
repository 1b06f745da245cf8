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

// The chat page: send, stream the reply as it is generated, stop, regenerate, edit, rename.
document.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("chat");
  if (!root) return;
  const $ = (id) => document.getElementById(id);
  const messages = $("messages"), form = $("composer"), prompt = $("prompt");
  const send = $("send"), stop = $("stop"), regen = $("regenerate");
  const model = $("model"), system = $("system"), title = $("chat-title"), del = $("delete-chat");
  let conversation = root.dataset.conversation || null;
  let controller = null;
  let editing = null;

  async function api(method, path, body) {
    const res = await fetch(path, {
      method,
      headers: { "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!res.ok) throw new Error(await errorText(res));
    return res;
  }

  async function errorText(res) {
    try { return (await res.json()).error.message; } catch { return `The server answered ${res.status}.`; }
  }

  async function ensureConversation() {
    if (conversation) return conversation;
    const res = await api("POST", "/api/conversations", { ...choice(), system_prompt: system.value, collections: attached() });
    const created = await res.json();
    conversation = String(created.id);
    root.dataset.conversation = conversation;
    history.replaceState(null, "", `/chat?c=${created.id}`);
    return conversation;
  }

  function bubble(role, who) {
    const li = document.createElement("li");
    li.className = `msg ${role}`;
    const name = document.createElement("div");
    name.className = "who";
    name.textContent = who;
    const body = document.createElement("div");
    body.className = role === "user" ? "body plain" : "body markdown";
    li.append(name, body);
    messages.append(li);
    li.scrollIntoView({ block: "end" });
    return { li, body };
  }

  function note(target, text, isError) {
    const div = document.createElement("div");
    div.className = isError ? "error-note" : "note";
    if (isError) div.setAttribute("role", "alert");
    div.textContent = text;
    target.li.append(div);
  }

  function busy(on) {
    send.disabled = on;
    stop.hidden = !on;
    regen.hidden = on || messages.children.length === 0;
    prompt.disabled = on;
    if (!on) prompt.focus();
  }

  function addCopyButtons(scope) {
    for (const pre of scope.querySelectorAll(".markdown pre")) {
      if (pre.querySelector(".copy")) continue;
      const button = document.createElement("button");
      button.type = "button";
      button.className = "copy";
      button.textContent = "Copy";
      button.addEventListener("click", async () => {
        await navigator.clipboard.writeText(pre.querySelector("code")?.textContent ?? pre.textContent);
        button.textContent = "Copied";
        setTimeout(() => { button.textContent = "Copy"; }, 1500);
      });
      pre.append(button);
    }
  }

  // The picker holds models and admins' assistants ("preset:NAME"): what to send for each.
  function choice() {
    const v = model.value;
    return v.startsWith("preset:") ? { preset: v.slice(7) } : { model: v };
  }

  // With an assistant chosen, a message goes to the conversation's model (the assistant's).
  function modelOfMessage() {
    return model.value.startsWith("preset:") ? {} : { model: model.value };
  }

  // The collections this chat answers from, as ticked.
  function attached() {
    return [...document.querySelectorAll("#sources-picker input[name=collection]:checked")].map((i) => i.value);
  }

  // A reply's sources under it, each opening to its passage and a link to the file.
  function renderCitations(li, id, citations) {
    if (!citations || !citations.length) return;
    const list = document.createElement("ol");
    list.className = "citations";
    list.setAttribute("aria-label", "Sources");
    for (const c of citations) {
      const item = document.createElement("li");
      item.id = `cite-${id}-${c.number}`;
      item.value = c.number;
      const details = document.createElement("details");
      const summary = document.createElement("summary");
      summary.textContent = `${c.place} `;
      const where = document.createElement("span");
      where.className = "muted";
      where.textContent = `${c.collection} · ${c.source}`;
      summary.append(where);
      const quote = document.createElement("blockquote");
      quote.textContent = c.text;
      const open = document.createElement("a");
      open.href = `/api/collections/${encodeURIComponent(c.collection)}/documents/${c.document_id}/file`;
      open.textContent = "Open the file";
      details.append(summary, quote, open);
      item.append(details);
      list.append(item);
    }
    li.append(list);
    linkCitations(li, id);
  }

  // "[2]" in a reply becomes a link that opens source 2.
  function linkCitations(li, id) {
    const body = li.querySelector(".body");
    if (!body || !li.querySelector(".citations")) return;
    const walker = document.createTreeWalker(body, NodeFilter.SHOW_TEXT);
    const nodes = [];
    while (walker.nextNode()) nodes.push(walker.currentNode);
    for (const node of nodes) {
      const parts = node.textContent.split(/(\[\d+\])/);
      if (parts.length === 1) continue;
      const frag = document.createDocumentFragment();
      for (const part of parts) {
        const n = /^\[(\d+)\]$/.exec(part);
        const target = n && li.querySelector(`#cite-${id}-${n[1]}`);
        if (!target) { frag.append(part); continue; }
        const a = document.createElement("a");
        a.className = "cite";
        a.href = `#${target.id}`;
        a.textContent = part;
        a.addEventListener("click", () => { target.querySelector("details").open = true; });
        frag.append(a);
      }
      node.replaceWith(frag);
    }
  }

  function addEditButton(li) {
    if (!li.classList.contains("user") || li.querySelector(".edit")) return;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "edit link";
    button.textContent = "Edit";
    button.addEventListener("click", () => {
      editing = li;
      prompt.value = li.querySelector(".body").textContent;
      send.textContent = "Resend";
      prompt.focus();
    });
    li.append(button);
  }

  async function stream(path, body, target) {
    controller = new AbortController();
    busy(true);
    let text = "";
    const handle = (block) => {
      let event = "", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) event = line.slice(7);
        else if (line.startsWith("data: ")) data = line.slice(6);
      }
      if (!data) return;
      const payload = JSON.parse(data);
      if (event === "queued") {
        // The model is busy: say where we stand until the first token replaces it.
        target.body.textContent = payload.position === 1
          ? "The model is busy; you are next in line."
          : `The model is busy; you are ${payload.position} in line.`;
        target.body.setAttribute("aria-live", "polite");
      } else if (event === "token") {
        text += payload.text;
        target.body.textContent = text;
        target.li.scrollIntoView({ block: "end" });
      } else if (event === "done") {
        target.body.innerHTML = payload.html; // rendered and sanitised by the server
        target.li.dataset.id = payload.message_id;
        renderCitations(target.li, payload.message_id, payload.citations);
        addCopyButtons(target.li);
      } else if (event === "error") {
        note(target, payload.message, true);
      }
    };
    try {
      const res = await fetch(path, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
        signal: controller.signal,
      });
      if (!res.ok) {
        note(target, await errorText(res), true);
        return;
      }
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          handle(buffer.slice(0, cut));
          buffer = buffer.slice(cut + 2);
        }
      }
    } catch (err) {
      if (err.name === "AbortError") note(target, "Stopped.");
      else note(target, `The reply was interrupted: ${err.message}`, true);
    } finally {
      controller = null;
      busy(false);
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const content = prompt.value.trim();
    if (!content || controller) return;
    let id;
    try {
      id = await ensureConversation();
    } catch (err) {
      note(bubble("assistant", "Ayush"), err.message, true);
      return;
    }
    prompt.value = "";
    if (editing && editing.dataset.id) {
      const target = editing;
      editing = null;
      send.textContent = "Send";
      while (target.nextElementSibling) target.nextElementSibling.remove();
      target.querySelector(".body").textContent = content;
      await stream(`/api/conversations/${id}/messages/${target.dataset.id}/edit`, { content }, bubble("assistant", model.value));
      return;
    }
    const mine = bubble("user", "You");
    mine.body.textContent = content;
    await stream(`/api/conversations/${id}/messages`, { content, ...modelOfMessage() }, bubble("assistant", model.value));
    // The server stored the user's message; reload ids so it can be edited.
    const stored = await (await api("GET", `/api/conversations/${id}`)).json();
    const users = stored.messages.filter((m) => m.role === "user");
    const last = users[users.length - 1];
    if (last) {
      mine.li.dataset.id = last.id;
      addEditButton(mine.li);
    }
  });

  prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  stop.addEventListener("click", () => controller?.abort());

  regen.addEventListener("click", async () => {
    if (!conversation || controller) return;
    while (messages.lastElementChild && messages.lastElementChild.classList.contains("assistant")) {
      messages.lastElementChild.remove();
    }
    await stream(`/api/conversations/${conversation}/regenerate`, modelOfMessage(), bubble("assistant", model.value));
  });

  const patch = (body) => conversation && api("PATCH", `/api/conversations/${conversation}`, body).catch((err) => alert(err.message));
  model.addEventListener("change", () => patch(choice()));
  for (const box of document.querySelectorAll("#sources-picker input[name=collection]")) {
    box.addEventListener("change", () => patch({ collections: attached() }));
  }
  system.addEventListener("change", () => patch({ system_prompt: system.value }));
  title?.addEventListener("change", () => patch({ title: title.value }));
  del?.addEventListener("click", async (event) => {
    if (event.defaultPrevented) return;
    await api("DELETE", `/api/conversations/${conversation}`);
    location.href = "/chat";
  });

  // A file attached to this chat: kept in the chat's files collection, which the chat answers
  // from once the file is read.
  const attachInput = $("attach-file"), attachments = $("attachments");
  attachInput?.addEventListener("change", async () => {
    const file = attachInput.files[0];
    attachInput.value = "";
    if (!file) return;
    const li = document.createElement("li");
    li.dataset.file = file.name;
    const state = document.createElement("span");
    state.className = "state";
    const show = (text, failed) => {
      state.textContent = `${file.name}: ${text}`;
      state.classList.toggle("failed", !!failed);
      li.dataset.state = failed ? "failed" : text.split(":")[0];
    };
    li.append(state);
    attachments.append(li);
    show("uploading");
    let id;
    try { id = await ensureConversation(); } catch (err) { show(`failed: ${err.message}`, true); return; }
    const res = await fetch(`/chat/${id}/attach?source=${encodeURIComponent(file.name)}`, {
      method: "POST", headers: { "X-CSRF-Token": root.dataset.csrf }, body: file,
    });
    if (res.status === 200) { show("ready: unchanged"); return; }
    if (res.status !== 202) { show(`failed: ${await errorText(res)}`, true); return; }
    let job = await res.json();
    while (job.status === "queued" || job.status === "running") {
      show(job.status === "running" ? "reading the file…" : "queued");
      await new Promise((ok) => setTimeout(ok, 700));
      job = await (await fetch(`/api/jobs/${job.id}`)).json();
    }
    if (job.status === "done") show("ready: the chat answers from it");
    else show(`failed: ${job.error || job.status}`, true);
  });

  for (const li of messages.querySelectorAll(".msg.user")) addEditButton(li);
  for (const li of messages.querySelectorAll(".msg.assistant")) linkCitations(li, li.dataset.id);
  addCopyButtons(messages);
  prompt.focus();
});

// A collection's page: files dropped or chosen are uploaded two at a time, each with its own
// progress bar, then followed until its ingestion job is done, or failed with the reason.
document.addEventListener("DOMContentLoaded", () => {
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
    bar.max = 1; bar.value = 0;
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
    try { return JSON.parse(xhr.responseText).error.message; } catch { return `The server answered ${xhr.status}.`; }
  }

  async function follow(r, job) {
    for (;;) {
      if (job.status === "done") { show(r, `done: ${job.outcome}`); return; }
      if (job.status === "failed") { show(r, `failed: ${job.error}`, true); return; }
      if (job.status === "cancelled") { show(r, "cancelled", true); return; }
      show(r, job.status === "running" ? "reading the file…" : "queued");
      await new Promise((ok) => setTimeout(ok, 700));
      const res = await fetch(`/api/jobs/${job.id}`);
      if (!res.ok) { show(r, `failed: the server answered ${res.status}`, true); return; }
      job = await res.json();
    }
  }

  function send(file, r) {
    return new Promise((done) => {
      if (file.size > maxBytes) {
        show(r, `failed: larger than ${zone.dataset.max} MiB`, true);
        return done();
      }
      const xhr = new XMLHttpRequest();
      xhr.open("POST", `${zone.dataset.url}?source=${encodeURIComponent(file.name)}`);
      xhr.setRequestHeader("X-CSRF-Token", zone.dataset.csrf);
      xhr.upload.onprogress = (e) => { if (e.lengthComputable) { r.bar.max = e.total; r.bar.value = e.loaded; } show(r, "uploading"); };
      xhr.onerror = () => { show(r, "failed: the upload broke off", true); done(); };
      xhr.onload = async () => {
        r.bar.max = 1; r.bar.value = 1;
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
      send(file, r).then(() => { active -= 1; pump(); });
    }
  }

  function add(files) {
    for (const file of files) queue.push([file, row(file)]);
    pump();
  }

  input.addEventListener("change", () => { add(input.files); input.value = ""; });
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => { e.preventDefault(); zone.classList.remove("over"); add(e.dataTransfer.files); });

  for (const button of document.querySelectorAll("button.cancel-job")) {
    button.addEventListener("click", async () => {
      const res = await fetch(`/api/jobs/${button.dataset.job}/cancel`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: "{}",
      });
      button.replaceWith(document.createTextNode(res.ok ? "cancelling" : "cannot cancel"));
    });
  }
});
