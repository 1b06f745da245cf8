// The chat page: send, stream the reply as it is generated, stop, regenerate, continue, edit,
// rename, and attach files the chat answers from.
import { api, errorText, followJob } from "./http.js";
import { addAnswerCopy, addCopyButtons, button, fromMarkup, linkCitations } from "./replies.js";
import { addReadAloud } from "./readaloud.js";
import { readEvents } from "./stream.js";

export function enhanceChat() {
  const root = document.getElementById("chat");
  if (!root) return;
  const $ = (id) => document.getElementById(id);
  const messages = $("messages"), form = $("composer"), prompt = $("prompt");
  const send = $("send"), stop = $("stop"), regen = $("regenerate");
  const model = $("model"), system = $("system"), title = $("chat-title"), del = $("delete-chat"), pin = $("pin-chat");
  let conversation = root.dataset.conversation || null;
  let controller = null;
  let editing = null;

  async function ensureConversation() {
    if (conversation) return conversation;
    const res = await api("POST", "/api/conversations", { ...choice(), system_prompt: system.value, collections: attached() });
    const created = await res.json();
    conversation = String(created.id);
    root.dataset.conversation = conversation;
    history.replaceState(null, "", `/chat?c=${created.id}`);
    pin.hidden = false;
    del.hidden = false;
    return conversation;
  }

  // The sidebar's list, as the server draws it, with this chat marked.
  async function refreshList() {
    const list = document.getElementById("conversation-list");
    if (!list) return;
    const res = await fetch(`/chat/list?c=${conversation || ""}`);
    if (!res.ok) return;
    list.replaceWith(fromMarkup(await res.text()));
    document.querySelector(".chats")?.removeAttribute("hidden");
  }

  function showTitle(text) {
    title.value = text;
    $("chat-heading").textContent = text || "New chat";
    document.title = `${text || "New chat"} · ${document.documentElement.dataset.product}`;
  }

  // A message being written or streamed, before the server's rendering replaces it.
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

  function addEditButton(li) {
    if (!li.classList.contains("user") || li.querySelector(".edit")) return;
    li.append(button("edit link", "Edit", () => {
      editing = li;
      prompt.value = li.querySelector(".body").textContent;
      send.textContent = "Resend";
      prompt.focus();
    }));
  }

  // "Regenerate" under an answer: the last one is answered again; an earlier one, after the
  // person agrees, is answered again from its question, and what came after it goes (as an
  // edit that keeps the question does).
  function addRegenerateButton(li) {
    if (!li.classList.contains("assistant") || !li.dataset.id || li.querySelector(".regenerate-answer")) return;
    const question = li.previousElementSibling;
    if (!question?.classList.contains("user")) return;
    li.append(button("regenerate-answer link", "Regenerate", async () => {
      if (!conversation || controller) return;
      if (li === messages.lastElementChild) {
        li.remove();
        await stream(`/api/conversations/${conversation}/regenerate`, modelOfMessage(), bubble("assistant", model.value));
        return;
      }
      if (!question.dataset.id) return;
      if (!confirm("Answer this question again? The messages after it are replaced.")) return;
      while (question.nextElementSibling) question.nextElementSibling.remove();
      const content = question.querySelector(".body").textContent;
      await stream(`/api/conversations/${conversation}/messages/${question.dataset.id}/edit`, { content }, bubble("assistant", model.value));
    }));
  }

  // What an answer gains in the page, alike when the page loads and when it arrives.
  function enhanceAnswer(li) {
    linkCitations(li);
    addCopyButtons(li);
    addAnswerCopy(li);
    addRegenerateButton(li);
    addReadAloud(li);
  }

  // "Continue" under the last answer when it reached its length limit: the model writes on
  // from its last word, and the answer grows in place.
  function offerContinue() {
    for (const b of messages.querySelectorAll(".continue-answer")) b.remove();
    const li = messages.lastElementChild;
    if (!li?.classList.contains("assistant") || !li.dataset.id || li.classList.contains("failed")) return;
    if (li.dataset.finish !== "length") return;
    const more = button("continue-answer link", "Continue", async () => {
      if (!conversation || controller) return;
      more.remove();
      for (const old of li.querySelectorAll(":scope > .note, :scope > .msg-footer")) old.remove();
      const rest = document.createElement("div");
      rest.className = "body markdown";
      li.querySelector(".body").after(rest);
      await stream(`/api/conversations/${conversation}/continue`, {}, { li, body: rest });
    });
    li.append(more);
  }

  async function stream(path, body, target) {
    controller = new AbortController();
    busy(true);
    let text = "";
    // The answer is done before the stream ends (a title may follow): the person may go on.
    let settled = false;
    const settle = () => {
      if (settled) return;
      settled = true;
      controller = null;
      busy(false);
      offerContinue();
    };
    const onEvent = (event, payload) => {
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
        // The reply as the page renders it on load: the same partial, from the server.
        const shown = fromMarkup(payload.item);
        target.li.replaceWith(shown);
        target.li = shown;
        target.body = shown.querySelector(".body");
        enhanceAnswer(shown);
        settle();
        refreshList();
      } else if (event === "title") {
        showTitle(payload.title);
        refreshList();
      } else if (event === "error") {
        note(target, payload.message, true);
        settle();
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
      await readEvents(res, onEvent);
    } catch (err) {
      if (settled) return;
      if (err.name === "AbortError") note(target, "Stopped.");
      else note(target, `The reply was interrupted: ${err.message}`, true);
    } finally {
      settle();
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
      note(bubble("assistant", document.documentElement.dataset.product), err.message, true);
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

  // Shortcuts: Escape stops an answer, Shift+Escape goes to the message box, Ctrl+Shift+O (in
  // nav.js, on every page) starts a new chat.
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && event.shiftKey) {
      event.preventDefault();
      prompt.focus();
    } else if (event.key === "Escape" && controller) {
      controller.abort();
    }
  });

  pin?.addEventListener("click", async () => {
    if (!conversation) return;
    const pinned = pin.getAttribute("aria-pressed") !== "true";
    try {
      await api("PATCH", `/api/conversations/${conversation}`, { pinned });
    } catch (err) {
      alert(err.message);
      return;
    }
    pin.setAttribute("aria-pressed", String(pinned));
    pin.textContent = pinned ? "Unpin" : "Pin";
    refreshList();
  });

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
  title.addEventListener("change", async () => {
    await ensureConversation();
    await patch({ title: title.value });
    showTitle(title.value);
    refreshList();
  });
  del?.addEventListener("click", async (event) => {
    if (event.defaultPrevented) return;
    await api("DELETE", `/api/conversations/${conversation}`);
    location.href = "/chat";
  });

  enhanceAttachments(root, ensureConversation);

  for (const li of messages.querySelectorAll(".msg.user")) addEditButton(li);
  for (const li of messages.querySelectorAll(".msg.assistant")) enhanceAnswer(li);
  offerContinue();
  prompt.focus();
}

// A file attached to this chat: kept in the chat's files collection, which the chat answers
// from once the file is read.
function enhanceAttachments(root, ensureConversation) {
  const input = document.getElementById("attach-file");
  const list = document.getElementById("attachments");
  input?.addEventListener("change", async () => {
    const file = input.files[0];
    input.value = "";
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
    list.append(li);
    show("uploading");
    let id;
    try {
      id = await ensureConversation();
    } catch (err) {
      show(`failed: ${err.message}`, true);
      return;
    }
    const res = await fetch(`/chat/${id}/attach?source=${encodeURIComponent(file.name)}`, {
      method: "POST", headers: { "X-CSRF-Token": root.dataset.csrf }, body: file,
    });
    if (res.status === 200) { show("ready: unchanged"); return; }
    if (res.status !== 202) { show(`failed: ${await errorText(res)}`, true); return; }
    const job = await followJob(await res.json(), (j) => show(j.status === "running" ? "reading the file…" : "queued"));
    if (job.status === "done") show("ready: the chat answers from it");
    else show(`failed: ${job.error || job.status}`, true);
  });
}
