// Branches of a conversation on the chat page: the "‹ 2 / 3 ›" controls, the inline editor of a
// user message, and reading the branch shown from the server after a switch (docs/protocol.md).
// DOM only: chat.js owns the socket and the messages on screen.

/** The same markup as templates/partials/branch_nav.html; null for a message without siblings. */
export function branchNav(siblings, messageId) {
  const index = Array.isArray(siblings) ? siblings.indexOf(messageId) : -1;
  if (index < 0 || siblings.length < 2) return null;
  const nav = document.createElement("span");
  nav.className = "branch-nav";
  nav.dataset.testid = "branch-nav";
  const step = (target, label, text, testid) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "branch-step";
    button.dataset.action = "branch-step";
    button.dataset.target = target ? String(target) : "";
    button.dataset.testid = testid;
    button.setAttribute("aria-label", label);
    button.textContent = text;
    button.disabled = !target;
    return button;
  };
  const position = document.createElement("span");
  position.className = "branch-position";
  position.dataset.testid = "branch-position";
  position.textContent = `${index + 1} / ${siblings.length}`;
  nav.append(
    step(siblings[index - 1], "Previous version", "‹", "branch-previous"),
    position,
    step(siblings[index + 1], "Next version", "›", "branch-next"),
  );
  return nav;
}

/** Show where a message stands among its siblings (a new edit or a regenerated reply). */
export function showSiblings(el, siblings) {
  const nav = branchNav(siblings, Number(el.dataset.messageId));
  el.querySelector(".branch-nav")?.remove();
  if (!nav) return;
  el.dataset.siblings = siblings.join(",");
  const tools = el.querySelector(".message-tools");
  if (tools) tools.prepend(nav);
  else el.querySelector(".message-meta")?.prepend(nav);
}

/** An inline editor in place of a user message's text; `onSubmit(text)` returns true when sent. */
export function openEditor(el, { maxChars, onSubmit }) {
  const open = el.querySelector(".edit-form");
  if (open) {
    open.querySelector("textarea").focus();
    return;
  }
  const body = el.querySelector('[data-testid="message-body"]');
  const form = document.createElement("form");
  form.className = "edit-form";
  form.dataset.testid = "edit-form";
  const field = document.createElement("textarea");
  field.value = body.textContent;
  field.rows = Math.min(Math.max(field.value.split("\n").length, 2), 10);
  field.maxLength = maxChars;
  field.dataset.testid = "edit-input";
  field.setAttribute("aria-label", "Edit your message");
  const actions = document.createElement("div");
  actions.className = "edit-actions";
  const hint = document.createElement("span");
  hint.className = "edit-hint muted";
  hint.textContent = "The old version and its replies stay: switch back with ‹ ›.";
  const cancel = document.createElement("button");
  cancel.type = "button";
  cancel.className = "btn btn-ghost btn-sm";
  cancel.dataset.action = "cancel-edit";
  cancel.textContent = "Cancel";
  const save = document.createElement("button");
  save.type = "submit";
  save.className = "btn btn-primary btn-sm";
  save.dataset.testid = "edit-submit";
  save.textContent = "Send";
  actions.append(hint, cancel, save);
  form.append(field, actions);
  const submit = () => {
    if (field.value.trim() && onSubmit(field.value)) closeEditor(form);
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });
  field.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submit();
    } else if (event.key === "Escape") {
      event.preventDefault();
      closeEditor(form);
    }
  });
  body.hidden = true;
  el.classList.add("is-editing");
  body.after(form);
  field.focus();
  field.setSelectionRange(field.value.length, field.value.length);
}

export function closeEditor(form) {
  const el = form?.closest(".message");
  if (!el) return;
  el.querySelector('[data-testid="message-body"]').hidden = false;
  el.classList.remove("is-editing");
  form.remove();
  el.querySelector('[data-action="edit"]')?.focus();
}

/** The page as the server renders it now: its messages (the active branch), chat config and
 * summary panel. The page's own template is the one renderer of a stored message. */
export async function fetchBranch(url) {
  const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
  if (!response.ok || response.redirected) throw new Error(`the server answered ${response.status}`);
  const doc = new DOMParser().parseFromString(await response.text(), "text/html");
  const list = doc.getElementById("messages");
  if (!list) throw new Error("the page had no messages");
  const configEl = doc.getElementById("chat-config");
  return {
    nodes: [...list.childNodes],
    config: configEl ? JSON.parse(configEl.textContent) : null,
    summaryPanel: doc.querySelector("#summary-disclosure .summary-panel"),
  };
}
