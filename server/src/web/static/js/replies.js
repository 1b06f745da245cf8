// What a rendered reply gains in the browser: "[2]" becomes a link that opens source 2, and
// code blocks get a copy button. The markup itself comes from the server (the message partial).

/// Links the "[n]" markers of a reply to its sources.
export function linkCitations(li) {
  const id = li.dataset.id;
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
      if (!target) {
        frag.append(part);
        continue;
      }
      const a = document.createElement("a");
      a.className = "cite";
      a.href = `#${target.id}`;
      a.textContent = part;
      a.addEventListener("click", () => {
        target.querySelector("details").open = true;
      });
      frag.append(a);
    }
    node.replaceWith(frag);
  }
}

/// Under each answer, a button that copies its text.
export function addAnswerCopy(scope) {
  const answers = scope.matches?.(".msg.assistant") ? [scope] : scope.querySelectorAll(".msg.assistant");
  for (const li of answers) {
    const body = li.querySelector(".body");
    if (!body || li.querySelector(".copy-answer") || !body.textContent.trim()) continue;
    const copy = button("copy-answer link", "Copy answer", async () => {
      await navigator.clipboard.writeText(body.innerText);
      copy.textContent = "Copied";
      setTimeout(() => {
        copy.textContent = "Copy answer";
      }, 1500);
    });
    li.append(copy);
  }
}

export function addCopyButtons(scope) {
  for (const pre of scope.querySelectorAll(".markdown pre")) {
    if (pre.querySelector(".copy")) continue;
    const copy = button("copy", "Copy", async () => {
      await navigator.clipboard.writeText(pre.querySelector("code")?.textContent ?? pre.textContent);
      copy.textContent = "Copied";
      setTimeout(() => {
        copy.textContent = "Copy";
      }, 1500);
    });
    pre.append(copy);
  }
}

/// A plain `<button type="button">` with its class, label and action: the controls under
/// answers and messages.
export function button(className, label, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = className;
  b.textContent = label;
  b.addEventListener("click", onClick);
  return b;
}

/// A reply as the server rendered it (one `<li>`), as an element.
export function fromMarkup(markup) {
  const template = document.createElement("template");
  template.innerHTML = markup; // rendered and sanitised by the server
  return template.content.firstElementChild;
}
