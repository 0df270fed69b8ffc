// Parley chat page: one WebSocket per tab (docs/protocol.md), no framework, no build step.
//
// Streamed text is only ever added as text nodes. The one place HTML is inserted is the `html`
// field of a `done` frame, which the server renders from Markdown and sanitises (nh3).

import { AttachmentTray, renderImages } from "./attachments.js";
import { closeEditor, fetchBranch, openEditor, showSiblings } from "./branches.js";

const configEl = document.getElementById("chat-config");
const config = configEl ? JSON.parse(configEl.textContent) : null;
// A suspended account learns it on page load, not from its first failed send.
window.addEventListener("DOMContentLoaded", () => {
  if (config?.suspended) showSuspended(config.suspendedMessage);
});

const RECONNECT_MIN_MS = 500;
const RECONNECT_MAX_MS = 10000;
const HEARTBEAT_MS = 20000;
const STALE_SOCKET_MS = 50000;
const RESUME_RETRY_MS = 4000;
const SEND_TIMEOUT_MS = 20000;
const STICK_THRESHOLD_PX = 80;
const TITLE_LENGTH = 60;

const NOTES = {
  stopped: "Stopped",
  interrupted: "Interrupted — the server restarted",
  blocked: "Stopped: the reply did not pass the content rules.",
};
/** A user message the input guardrails stopped, before (or without) the reason from the server. */
const BLOCKED_INPUT_NOTE = "Not sent — this message did not pass the content rules.";
const REPORTED_LABEL = "Reported — thank you";

const $ = (selector, root = document) => root.querySelector(selector);

const app = $(".app");
const thread = $("#main");
const list = $("#messages");
const emptyState = $("#empty-state");
const form = $("#composer");
const input = $("#composer-input");
const sendBtn = $('[data-testid="send"]');
const stopBtn = $('[data-testid="stop"]');
const charCount = $("#char-count");
const banner = $("#error-banner");
const connection = $('[data-testid="connection"]');
const jumpBtn = $('[data-action="jump"]');
const sidebarList = $("#conversation-list");
const sidebarEmpty = $("#conversation-empty");
const titleEl = $("#conversation-title");
const homeUrl = $('[data-testid="new-chat"]')?.getAttribute("href") || "/";
const siteName = document.title.split(" · ").pop();
const ZERO_UUID = "00000000-0000-0000-0000-000000000000";

let conversationId = config?.conversationId || null;
const maxChars = Number(config?.maxMessageChars) || 32000;

/** Messages on screen by id: {el, body, role, status, seq, model, resumeAt}. */
const messages = new Map();
/** Optimistic user messages by client_id: {el, content, frame, sent, timer}. */
const pendingSends = new Map();
/** Sends shown as failed, kept so that a late confirmation can still put them right. */
const failedSends = new Map();
/** The assistant message of this conversation that is streaming, if any. */
let streamingId = null;
/** The account may not send (an error `suspended`): the composer stays disabled. */
let suspended = false;
/** Images waiting in the composer (static/js/attachments.js); null where uploads are off. */
let tray = null;

// --- small helpers ----------------------------------------------------------------------------

function randomId() {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return "c-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function titleFrom(text) {
  const flat = text.split(/\s+/).filter(Boolean).join(" ");
  return flat.length <= TITLE_LENGTH ? flat : flat.slice(0, TITLE_LENGTH - 1).trimEnd() + "…";
}

function urlFor(kind, id) {
  const pattern = sidebarList?.dataset[kind + "Url"] || `/c/${ZERO_UUID}/`;
  return pattern.replace(ZERO_UUID, id);
}

function reportUrl(messageId) {
  const pattern = list.dataset.reportUrl || `/c/${ZERO_UUID}/m/0/report/`;
  return pattern.replace(ZERO_UUID, conversationId).replace(/\/m\/0\//, `/m/${messageId}/`);
}

function csrfToken() {
  return $('meta[name="csrf-token"]')?.content || "";
}

function formatNumber(n) {
  return Number(n).toLocaleString("en-US");
}

function plural(count, noun) {
  return `${formatNumber(count)} ${noun}${count === 1 ? "" : "s"}`;
}

// --- scrolling --------------------------------------------------------------------------------

let stickToBottom = true;

function atBottom() {
  return thread.scrollHeight - thread.scrollTop - thread.clientHeight < STICK_THRESHOLD_PX;
}

function scrollToBottom(force = false) {
  if (force) stickToBottom = true;
  if (stickToBottom) thread.scrollTop = thread.scrollHeight;
  jumpBtn.hidden = stickToBottom;
}

thread.addEventListener("scroll", () => {
  stickToBottom = atBottom();
  jumpBtn.hidden = stickToBottom;
}, { passive: true });

jumpBtn.addEventListener("click", () => scrollToBottom(true));

// --- error banner -----------------------------------------------------------------------------

function showError(text) {
  if (suspended) return; // the suspension notice stays: nothing else can be done from here
  $(".banner-text", banner).textContent = text;
  banner.hidden = false;
}

function hideError() {
  if (suspended) return;
  banner.hidden = true;
}

function showSuspended(text) {
  $(".banner-text", banner).textContent = text || "Your account is suspended, so you cannot send messages.";
  banner.dataset.kind = "suspended";
  $('[data-action="dismiss-error"]', banner).hidden = true;
  banner.hidden = false;
  suspended = true;
  input.disabled = true;
  input.setAttribute("aria-describedby", banner.id);
  input.placeholder = "Sending is turned off for this account";
  updateComposer();
  scrollToBottom(); // the banner takes room from the thread: keep the last message in view
}

// --- messages ---------------------------------------------------------------------------------

function register(el) {
  const id = Number(el.dataset.messageId);
  const entry = {
    el,
    body: $('[data-testid="message-body"]', el),
    role: el.dataset.role,
    status: el.dataset.status,
    seq: Number(el.dataset.seq) || 0,
    resumeAt: 0,
  };
  messages.set(id, entry);
  return entry;
}

function setNote(entry, text) {
  const note = $('[data-testid="message-note"]', entry.el);
  note.textContent = text || "";
  note.hidden = !text;
  note.className = "message-note" + (text ? ` note-${entry.el.dataset.status}` : "");
}

function setStatus(entry, status) {
  entry.status = status;
  entry.el.dataset.status = status;
}

/** A user message the input guardrails stopped: it stays in the thread with the reason under it. */
function markBlocked(el, reason) {
  el.dataset.status = "blocked";
  const entry = messages.get(Number(el.dataset.messageId));
  if (entry) entry.status = "blocked";
  const note = $('[data-testid="message-note"]', el);
  if (reason) {
    note.textContent = reason; // the server's sentence already says it was not sent, and why
    el.dataset.reason = "server";
  } else if (!el.dataset.reason) {
    note.textContent = BLOCKED_INPUT_NOTE; // the reason comes in the error frame, maybe later
  }
  note.className = "message-note note-blocked";
  note.hidden = false;
}

function showMessages() {
  if (emptyState) emptyState.hidden = true;
}

function appendUserMessage(content, attachments = []) {
  const el = $("#tpl-message-user").content.firstElementChild.cloneNode(true);
  $('[data-testid="message-body"]', el).textContent = content;
  renderImages(el, attachments);
  showMessages();
  list.append(el);
  return el;
}

function appendAssistantMessage(payload) {
  const el = $("#tpl-message-assistant").content.firstElementChild.cloneNode(true);
  el.id = `m-${payload.id}`;
  el.dataset.messageId = String(payload.id);
  el.dataset.seq = String(payload.seq || 0);
  $(".meta-model", el).textContent = payload.model || "";
  showMessages();
  list.append(el);
  const entry = register(el);
  setStatus(entry, payload.status || "streaming");
  if (payload.content) entry.body.textContent = payload.content;
  if (entry.status === "streaming") {
    streamingId = payload.id;
    updateComposer();
  }
  return entry;
}

function assistantEntry(messageId) {
  return messages.get(messageId) || appendAssistantMessage({ id: messageId, status: "streaming", seq: 0 });
}

function requestResume(messageId, entry) {
  entry.resumeAt = Date.now();
  send({ type: "resume", conversation_id: conversationId, message_id: messageId, last_seq: entry.seq });
}

/** Code blocks get a language label (CSS, from data-lang) and an icon-only copy button. */
function enhance(body) {
  for (const pre of body.querySelectorAll("pre")) {
    if (pre.parentElement.classList.contains("code-block")) continue;
    const wrap = document.createElement("div");
    wrap.className = "code-block";
    const lang = (pre.querySelector("code")?.className.match(/language-([\w+#.-]+)/) || [])[1];
    wrap.dataset.lang = lang || "code";
    const copy = document.createElement("button");
    copy.type = "button";
    copy.className = "code-copy";
    copy.dataset.action = "copy-code";
    copy.setAttribute("aria-label", "Copy code");
    copy.title = "Copy code";
    copy.innerHTML = '<svg viewBox="0 0 24 24" width="15" height="15" aria-hidden="true"><rect x="9" y="9" width="11" height="11" rx="2" fill="none" stroke="currentColor" stroke-width="1.8"/><path d="M5 15V6a2 2 0 0 1 2-2h8" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round"/></svg>';
    pre.replaceWith(wrap);
    wrap.append(copy, pre);
  }
}

// --- the context gauge under a reply ---------------------------------------------------------
// The same numbers and markup as templates/partials/context_gauge.html (memory.views.context_gauge).

const TIERS = [
  ["system", "Instructions"],
  ["user", "Your message"],
  ["recent", "Recent turns"],
  ["summary", "Summary"],
  ["recalled", "Recalled turns"],
  ["facts", "Facts"],
  ["older", "Older turns"],
];
const COUNTED = { recent: "turn", recalled: "turn", facts: "fact", older: "turn" };
const DROPPED_NOUNS = { recent: "recent turn", recalled: "recalled turn", facts: "fact", older: "older turn" };

function compactTokens(n) {
  const trim = (x) => x.toFixed(1).replace(/\.0$/, "");
  if (n < 1000) return String(n);
  const kibi = Math.floor(n / 1024);
  if (n % 1024 === 0 && kibi < 1024 && (kibi & (kibi - 1)) === 0) return `${kibi}k`; // 8192 is "8k"
  if (n < 10000) return `${trim(n / 1000)}k`;
  if (n < 1000000) return `${Math.round(n / 1000)}k`;
  if (n % (1024 * 1024) === 0) return `${n / (1024 * 1024)}M`;
  return `${trim(n / 1000000)}M`;
}

function contextGauge(report, replyTokens) {
  if (!report || typeof report !== "object" || !Object.keys(report).length) return null;
  const int = (v) => Math.max(Number.parseInt(v, 10) || 0, 0);
  const window_ = int(report.window);
  const budget = int(report.budget);
  const used = int(report.tokens_used);
  const tiers = report.tiers || {};
  const included = report.included || {};
  const droppedCounts = report.dropped || {};
  const share = (tokens) => (window_ ? Math.min((tokens / window_) * 100, 100) : 0);
  const segments = [];
  const brief = [];
  for (const [key, label] of TIERS) {
    const tokens = int(tiers[key]);
    if (tokens === 0 && key !== "system" && key !== "user") continue;
    segments.push({
      key,
      label,
      tokens,
      count: COUNTED[key] ? plural(int(included[key]), COUNTED[key]) : "",
      percent: share(tokens),
    });
    if (key === "recent" || key === "summary") brief.push(`${key} ${formatNumber(tokens)}`);
    else if (key === "recalled") brief.push(`recalled ${plural(int(included[key]), "turn")}`);
    else if (key === "facts") brief.push(`facts ${int(included[key])}`);
    else if (key === "older") brief.push(`older ${plural(int(included[key]), "turn")}`);
  }
  const dropped = Object.entries(DROPPED_NOUNS)
    .filter(([key]) => droppedCounts[key])
    .map(([key, noun]) => plural(int(droppedCounts[key]), noun));
  if (int(droppedCounts.summary)) dropped.unshift("the summary");
  for (const item of dropped) brief.push(`dropped ${item}`);
  const ratio = budget ? used / budget : 0;
  let title = `Context: ${formatNumber(used)} of ${formatNumber(window_)} tokens`;
  if (brief.length) title += " · " + brief.join(" · ");
  return {
    used,
    window: window_,
    reserved: Math.max(window_ - budget, 0),
    level: ratio >= 0.9 ? "full" : ratio >= 0.7 ? "high" : "ok",
    segments,
    dropped,
    truncated: Boolean(report.truncated_user_message),
    title,
    replyTokens: replyTokens ? Number(replyTokens) : 0,
  };
}

function make(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function showGauge(messageEl, gauge) {
  const meta = $(".message-meta", messageEl);
  $(".context-gauge", meta)?.remove();
  $(".meta-tokens", meta).textContent = "";

  const details = make("details", "context-gauge");
  details.dataset.testid = "context-gauge";
  details.dataset.level = gauge.level;
  const summary = make("summary", "gauge");
  summary.title = gauge.title;
  summary.setAttribute(
    "aria-label",
    `Context: ${formatNumber(gauge.used)} of ${formatNumber(gauge.window)} tokens used. Show the breakdown`,
  );
  const bar = make("span", "gauge-bar");
  bar.setAttribute("aria-hidden", "true");
  for (const segment of gauge.segments) {
    const part = make("span", `gauge-seg seg-${segment.key}`);
    part.style.width = `${segment.percent.toFixed(2)}%`;
    bar.append(part);
  }
  const label = make("span", "gauge-label", `${compactTokens(gauge.used)} / ${compactTokens(gauge.window)} tokens`);
  label.dataset.testid = "context-gauge-label";
  summary.append(bar, label);

  const panel = make("div", "gauge-panel");
  panel.dataset.testid = "context-breakdown";
  const head = make("p", "gauge-head");
  head.append(make("strong", "", "Context window"), make("span", "", `${formatNumber(gauge.used)} / ${formatNumber(gauge.window)}`));
  const rows = make("ul", "gauge-tiers");
  for (const segment of gauge.segments) {
    const row = make("li");
    const dot = make("span", `gauge-dot seg-${segment.key}`);
    dot.setAttribute("aria-hidden", "true");
    row.append(
      dot,
      make("span", "gauge-tier", segment.label),
      make("span", "gauge-count", segment.count),
      make("span", "gauge-tokens", formatNumber(segment.tokens)),
    );
    rows.append(row);
  }
  panel.append(head, rows);
  panel.append(
    gauge.dropped.length
      ? make("p", "gauge-note gauge-dropped", `Left out to fit: ${gauge.dropped.join(", ")}.`)
      : make("p", "gauge-note", "Nothing was left out."),
  );
  if (gauge.truncated) panel.append(make("p", "gauge-note gauge-dropped", "Your message was shortened to fit."));
  const reply = gauge.replyTokens ? `, which used ${formatNumber(gauge.replyTokens)}` : "";
  panel.append(make("p", "gauge-note", `${formatNumber(gauge.reserved)} tokens kept free for the reply${reply}.`));

  details.append(summary, panel);
  $(".meta-tokens", meta).after(details);
}

// --- popovers: the summary and context breakdowns ---------------------------------------------

const POPOVERS = ".context-gauge, .summary-disclosure";

function closePopovers(except = null) {
  for (const open of document.querySelectorAll(`:is(${POPOVERS})[open]`)) {
    if (open !== except) open.open = false;
  }
}

document.addEventListener(
  "toggle",
  (event) => {
    const details = event.target;
    if (!(details instanceof HTMLDetailsElement) || !details.matches(POPOVERS) || !details.open) return;
    closePopovers(details);
    if (details.matches(".context-gauge")) placeGaugePanel(details);
  },
  true, // toggle does not bubble
);

document.addEventListener("click", (event) => {
  if (!event.target.closest(POPOVERS)) closePopovers();
});

/** Below the gauge if it fits in the thread, else above it if that fits, else scrolled into view. */
function placeGaugePanel(details) {
  const panel = $(".gauge-panel", details);
  delete details.dataset.placement;
  const bounds = thread.getBoundingClientRect();
  const below = panel.getBoundingClientRect();
  if (below.bottom <= bounds.bottom) return;
  const gauge = details.querySelector("summary").getBoundingClientRect();
  if (gauge.top - bounds.top >= below.height + 12) {
    details.dataset.placement = "up";
  } else {
    thread.scrollTop += below.bottom - bounds.bottom + 12;
  }
}

// --- anchors: /c/<id>/#m-<message id> opens the conversation at that message ----------------

function highlightTarget() {
  const match = location.hash.match(/^#m-(\d+)$/);
  const target = match && document.getElementById(`m-${match[1]}`);
  if (!target || !target.classList.contains("message")) return false;
  stickToBottom = false;
  target.scrollIntoView({ block: "start" }); // as the browser does for a fragment (scroll-margin)
  target.classList.remove("is-highlighted");
  void target.offsetWidth; // restart the animation when the same anchor is followed again
  target.classList.add("is-highlighted");
  target.addEventListener("animationend", () => target.classList.remove("is-highlighted"), { once: true });
  return true;
}

window.addEventListener("hashchange", highlightTarget);

// --- the socket -------------------------------------------------------------------------------

let socket = null;
let attempts = 0;
let everOpened = false;
let reconnectTimer = null;
let heartbeatTimer = null;
let lastFrameAt = 0;

function setConnection(state, label) {
  connection.dataset.state = state;
  const text = label || {
    open: "Connected",
    connecting: everOpened ? "Reconnecting…" : "Connecting…",
    closed: "Disconnected",
  }[state];
  $(".connection-label", connection).textContent = text;
}

function send(frame) {
  if (!socket || socket.readyState !== WebSocket.OPEN) return false;
  socket.send(JSON.stringify(frame));
  return true;
}

function connect() {
  clearTimeout(reconnectTimer);
  reconnectTimer = null;
  setConnection(navigator.onLine === false ? "closed" : "connecting", navigator.onLine === false ? "Offline" : "");
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  let ws;
  try {
    ws = new WebSocket(scheme + location.host + config.socketPath);
  } catch {
    scheduleReconnect();
    return;
  }
  socket = ws;
  ws.addEventListener("open", () => {
    if (socket !== ws) return;
    attempts = 0;
    everOpened = true;
    lastFrameAt = Date.now();
    setConnection("open");
    onOpen();
  });
  ws.addEventListener("message", (event) => {
    if (socket !== ws) return;
    lastFrameAt = Date.now();
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      return;
    }
    if (frame && typeof frame.type === "string") handleFrame(frame);
  });
  ws.addEventListener("close", (event) => {
    if (socket !== ws) return;
    socket = null;
    onClose(event.code);
  });
}

/** Put a pending send on the socket if it is open; give up on it if no answer comes. */
function dispatch(clientId, pending) {
  pending.sent = send(pending.frame);
  if (!pending.sent) return; // it leaves as soon as the socket opens
  clearTimeout(pending.timer);
  pending.timer = setTimeout(() => {
    if (pendingSends.get(clientId) !== pending) return;
    failSend(clientId, pending, "the server did not answer. Try again.");
    updateComposer();
  }, SEND_TIMEOUT_MS);
}

function onOpen() {
  if (conversationId) {
    send({ type: "subscribe", conversation_id: conversationId });
    for (const [id, entry] of messages) {
      if (entry.role === "assistant" && entry.status === "streaming") requestResume(id, entry);
    }
  }
  for (const [clientId, pending] of pendingSends) {
    if (!pending.sent) dispatch(clientId, pending);
  }
  clearInterval(heartbeatTimer);
  heartbeatTimer = setInterval(heartbeat, HEARTBEAT_MS);
}

function heartbeat() {
  if (!socket) return;
  if (Date.now() - lastFrameAt > STALE_SOCKET_MS) {
    dropSocket();
    return;
  }
  send({ type: "ping" });
}

/** Give up on a socket that went quiet: forget it now instead of waiting for TCP to notice. */
function dropSocket() {
  const ws = socket;
  socket = null;
  try {
    ws?.close();
  } catch {
    // already closing
  }
  onClose(1006);
}

function onClose(code) {
  clearInterval(heartbeatTimer);
  // A send that left on the dead socket without an answer may or may not have been stored.
  for (const [clientId, pending] of pendingSends) {
    if (pending.sent) failSend(clientId, pending, "the connection dropped before the server confirmed it. Reload to check, or send it again.");
  }
  updateComposer();
  if (code === 4401) {
    setConnection("closed", "Signed out");
    showError("Your session has ended. Reload the page to sign in again.");
    return;
  }
  scheduleReconnect();
}

function scheduleReconnect() {
  if (reconnectTimer) return;
  setConnection(navigator.onLine === false ? "closed" : "connecting", navigator.onLine === false ? "Offline" : "");
  const ceiling = Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** attempts);
  const delay = Math.max(RECONNECT_MIN_MS, ceiling / 2 + Math.random() * (ceiling / 2));
  attempts += 1;
  if (attempts === 4 && !everOpened) checkSession();
  reconnectTimer = setTimeout(connect, delay);
}

/** An unauthenticated socket is refused at the handshake, which a browser cannot tell from a
 * network error: after a few failures, ask the page itself whether we are still signed in. */
async function checkSession() {
  try {
    const response = await fetch(location.pathname, { redirect: "manual", credentials: "same-origin" });
    if (response.type === "opaqueredirect") {
      clearTimeout(reconnectTimer);
      reconnectTimer = null;
      setConnection("closed", "Signed out");
      showError("Your session has ended. Reload the page to sign in again.");
    }
  } catch {
    // offline: keep retrying
  }
}

function reconnectNow() {
  if (socket || !config) return;
  attempts = 0;
  connect();
}

window.addEventListener("online", reconnectNow);
window.addEventListener("offline", () => {
  if (!socket) setConnection("closed", "Offline");
});
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") reconnectNow();
});

// --- frames from the server -------------------------------------------------------------------

function handleFrame(frame) {
  switch (frame.type) {
    case "message.created":
      return onMessageCreated(frame);
    case "queue":
      return onQueue(frame);
    case "delta":
      return onDelta(frame);
    case "snapshot":
      return onSnapshot(frame);
    case "done":
      return onDone(frame);
    case "error":
      return onError(frame);
    case "subscribed":
      if (frame.conversation_id === conversationId) setTitle(frame.conversation_id, frame.title);
      return undefined;
    case "branch":
      if (frame.conversation_id === conversationId) reloadBranch();
      return undefined;
    default:
      return undefined; // pong and anything newer than this client
  }
}

function onMessageCreated(frame) {
  const message = frame.message;
  if (!message) return;
  let pending = frame.client_id ? pendingSends.get(frame.client_id) : undefined;
  if (!pending && frame.client_id && failedSends.has(frame.client_id)) {
    pending = unfailSend(frame.client_id); // stored after all: undo the failure shown
  }
  const blocked = message.role === "user" && message.status === "blocked";
  if (!conversationId && pending) adoptConversation(frame.conversation_id, blocked ? null : pending.content);
  bumpConversation(frame.conversation_id);
  if (frame.conversation_id !== conversationId || messages.has(message.id)) return;
  // An edit or a regenerated reply starts a branch: what followed its parent leaves the screen.
  if (!cutAfter(message.parent_id ?? null)) {
    reloadBranch(); // its parent is not shown here: this tab looked at another branch
    return;
  }

  if (message.role === "user") {
    const el = pending ? pending.el : appendUserMessage(message.content, message.attachments);
    if (pending) {
      clearTimeout(pending.timer);
      pendingSends.delete(frame.client_id);
    }
    el.id = `m-${message.id}`;
    el.dataset.messageId = String(message.id);
    el.dataset.seq = String(message.seq || 0);
    // The stored images replace the local previews: their links work after the page reloads.
    if (pending && message.attachments?.length) renderImages(el, message.attachments);
    setStatus(register(el), message.status || "complete");
    if (blocked) markBlocked(el, "");
    if (message.siblings) showSiblings(el, message.siblings);
    updateComposer();
  } else if (message.role === "assistant") {
    const entry = appendAssistantMessage(message);
    if (message.siblings) showSiblings(entry.el, message.siblings);
  }
  scrollToBottom();
}

// --- branches: edit, regenerate, switch (static/js/branches.js draws them) ---------------------

/** The stored messages on screen, in order (an unconfirmed send has no id yet). */
function shownMessages() {
  return [...list.querySelectorAll(":scope > .message")].filter((el) => el.dataset.messageId);
}

/** Drop the messages shown after `parentId` (all of them for null), unless it is the last one.
 * False when the parent is not on screen at all. */
function cutAfter(parentId) {
  const shown = shownMessages();
  if (shown.length === 0) return true; // a new conversation's first message
  const at = parentId === null ? -1 : shown.findIndex((el) => Number(el.dataset.messageId) === parentId);
  if (parentId !== null && at < 0) return false;
  for (const el of shown.slice(at + 1)) {
    const id = Number(el.dataset.messageId);
    messages.delete(id);
    if (streamingId === id) streamingId = null;
    el.remove();
  }
  return true;
}

let branchLoads = 0;

/** Show the conversation's active branch as the server has it now (after a switch, in any tab). */
async function reloadBranch() {
  const ticket = ++branchLoads;
  let page;
  try {
    page = await fetchBranch(location.pathname);
  } catch (error) {
    showError(`Could not show that branch (${error.message}). Reload the page.`);
    return;
  }
  if (ticket !== branchLoads) return; // a newer switch is on its way
  messages.clear();
  streamingId = null;
  list.replaceChildren(...page.nodes);
  for (const pending of pendingSends.values()) list.append(pending.el);
  for (const el of shownMessages()) {
    const entry = register(el);
    if (entry.role === "assistant" && entry.status !== "streaming") enhance(entry.body);
  }
  for (const item of page.config?.streaming || []) {
    const entry = messages.get(item.messageId);
    if (!entry) continue;
    entry.seq = Math.max(entry.seq, item.seq);
    streamingId = item.messageId;
    requestResume(item.messageId, entry);
  }
  const summary = $("#summary-disclosure .summary-panel");
  if (summary && page.summaryPanel) summary.replaceWith(page.summaryPanel);
  if (emptyState) emptyState.hidden = shownMessages().length > 0;
  updateComposer();
  scrollToBottom();
}

/** One reply at a time per conversation: say so instead of sending a frame the server refuses. */
function busyWithReply() {
  if (streamingId === null && !awaitingServer()) return false;
  showError("A reply is still being written. Stop it or wait, then try again.");
  return true;
}

function switchBranch(button) {
  const target = Number(button.dataset.target);
  if (!target || !conversationId || busyWithReply()) return;
  hideError();
  send({ type: "switch", conversation_id: conversationId, message_id: target });
}

function regenerateReply(button) {
  const id = Number(button.closest(".message")?.dataset.messageId);
  if (!id || !conversationId || suspended || busyWithReply()) return;
  hideError();
  send({ type: "regenerate", conversation_id: conversationId, message_id: id });
}

function editMessage(button) {
  const el = button.closest(".message");
  const id = Number(el?.dataset.messageId);
  if (!id || !conversationId || suspended) return;
  openEditor(el, {
    maxChars,
    onSubmit: (content) => {
      if (busyWithReply()) return false;
      hideError();
      return send({ type: "edit", conversation_id: conversationId, message_id: id, content, client_id: randomId() });
    },
  });
}

function onDelta(frame) {
  if (frame.conversation_id !== conversationId) return;
  const entry = assistantEntry(frame.message_id);
  if (entry.status !== "streaming" || frame.seq <= entry.seq) return; // finished, or a duplicate
  if (frame.seq === entry.seq + 1) {
    clearQueueNote(entry);
    entry.body.append(document.createTextNode(frame.text));
    entry.seq = frame.seq;
    entry.el.dataset.seq = String(frame.seq);
    scrollToBottom();
  } else if (Date.now() - entry.resumeAt > RESUME_RETRY_MS) {
    requestResume(frame.message_id, entry); // a gap: ask for the text from where we are
  }
}

function onSnapshot(frame) {
  if (frame.conversation_id !== conversationId) return;
  const entry = assistantEntry(frame.message_id);
  entry.resumeAt = 0;
  if (entry.status !== "streaming" || frame.seq < entry.seq) return; // `done` carries the rest
  if (frame.content) clearQueueNote(entry);
  entry.body.textContent = frame.content;
  entry.seq = frame.seq;
  entry.el.dataset.seq = String(frame.seq);
  scrollToBottom();
}

function ordinal(n) {
  const tens = n % 100;
  const suffix = tens >= 11 && tens <= 13 ? "th" : { 1: "st", 2: "nd", 3: "rd" }[n % 10] || "th";
  return `${n}${suffix}`;
}

/** The reply waits for a free slot of its model: say where it is in line until text arrives. */
function onQueue(frame) {
  if (frame.conversation_id !== conversationId) return;
  const entry = assistantEntry(frame.message_id);
  const position = Number(frame.position);
  if (entry.status !== "streaming" || entry.seq > 0 || !(position > 0)) {
    clearQueueNote(entry); // 0: it has a slot now, and text follows
    return;
  }
  let note = $(".queue-note", entry.el);
  if (!note) {
    note = make("p", "queue-note");
    note.dataset.testid = "queue-note";
    note.setAttribute("role", "status");
    entry.body.after(note);
  }
  note.textContent = `Waiting for a free slot: ${ordinal(position)} in line`;
}

function clearQueueNote(entry) {
  $(".queue-note", entry.el)?.remove();
}

function onDone(frame) {
  bumpConversation(frame.conversation_id);
  if (frame.conversation_id !== conversationId) return;
  const entry = assistantEntry(frame.message_id);
  clearQueueNote(entry);
  entry.body.classList.remove("is-streaming");
  entry.body.classList.add("markdown");
  entry.body.innerHTML = frame.html || ""; // server-rendered and sanitised; the only innerHTML
  enhance(entry.body);
  entry.seq = frame.seq;
  entry.el.dataset.seq = String(frame.seq);
  setStatus(entry, frame.status);
  let note = NOTES[frame.status] || "";
  if (frame.status === "failed") note = "Failed: " + (frame.error?.message || "the reply could not be completed");
  if (frame.status === "blocked" && frame.error?.message) note = frame.error.message;
  setNote(entry, note);
  const gauge = contextGauge(frame.context, frame.usage?.completion_tokens);
  if (gauge) {
    showGauge(entry.el, gauge); // the reply's own length is in the gauge's breakdown
  } else if (frame.usage) {
    const tokens = $(".meta-tokens", entry.el);
    tokens.textContent = `${formatNumber(frame.usage.completion_tokens)} tokens`;
    tokens.title = `Prompt ${formatNumber(frame.usage.prompt_tokens)} · reply ${formatNumber(frame.usage.completion_tokens)}`;
  }
  if (streamingId === frame.message_id) streamingId = null;
  updateComposer();
  scrollToBottom();
}

function onError(frame) {
  if (frame.code === "blocked") return onBlocked(frame);
  if (frame.code === "rate_limited") return onRateLimited(frame);
  if (frame.code === "suspended") {
    const waiting = frame.client_id ? pendingSends.get(frame.client_id) : undefined;
    if (waiting) failSend(frame.client_id, waiting, "your account is suspended.");
    showSuspended(frame.message);
    return undefined;
  }
  const pending = frame.client_id ? pendingSends.get(frame.client_id) : undefined;
  if (pending) {
    failSend(frame.client_id, pending, frame.message);
  } else if (!frame.client_id && frame.message_id === undefined) {
    // Some refusals of a `send` (an unknown conversation, a server fault) come without its
    // client_id: fail what is waiting rather than leave it spinning. A late confirmation undoes it.
    for (const [clientId, waiting] of pendingSends) {
      if (waiting.sent) failSend(clientId, waiting, frame.message);
    }
  }
  if (frame.code === "message_not_found" && frame.message_id === streamingId) {
    streamingId = null;
  }
  updateComposer();
  showError(frame.message || "Something went wrong.");
}

/** The input guardrails stopped a message: it was stored (status blocked) and gets no reply. The
 * `message.created` for it may come before or after this frame; either one settles the bubble. */
function onBlocked(frame) {
  const reason = frame.message || "";
  let pending = frame.client_id ? pendingSends.get(frame.client_id) : undefined;
  if (!pending && frame.client_id && failedSends.has(frame.client_id)) pending = unfailSend(frame.client_id);
  if (pending) {
    clearTimeout(pending.timer);
    pendingSends.delete(frame.client_id);
    if (!conversationId && frame.conversation_id) adoptConversation(frame.conversation_id, null);
    const id = Number(frame.message_id);
    if (frame.conversation_id === conversationId && Number.isInteger(id) && !messages.has(id)) {
      pending.el.id = `m-${id}`;
      pending.el.dataset.messageId = String(id);
      register(pending.el); // the later message.created finds it and adds nothing
    }
    markBlocked(pending.el, reason);
  } else if (frame.conversation_id === conversationId) {
    const entry = messages.get(Number(frame.message_id));
    if (entry && entry.role === "user") markBlocked(entry.el, reason);
  }
  updateComposer();
  scrollToBottom();
  return undefined;
}

/** Sending too fast: the message was not stored. It goes back to the composer, and the banner
 * counts down the server's `retry_after` to when sending works again. */
let rateLimitTimer = null;
function onRateLimited(frame) {
  const pending = frame.client_id ? pendingSends.get(frame.client_id) : undefined;
  if (pending) failSend(frame.client_id, pending, "you were sending too fast.");
  const until = Date.now() + Math.max(1, Number(frame.retry_after) || 1) * 1000;
  let shown = "";
  clearInterval(rateLimitTimer);
  const tick = () => {
    const left = Math.ceil((until - Date.now()) / 1000);
    // Dismissed, or another error took the banner: stop counting and leave it be.
    const ours = !shown || (!banner.hidden && $(".banner-text", banner).textContent === shown);
    if (left <= 0 || !ours) {
      clearInterval(rateLimitTimer);
      if (shown && ours) hideError();
      return;
    }
    const words = frame.message || "You are sending messages too fast. Try again in 1 s.";
    shown = words.replace(/\d+ s\.$/, `${left} s.`);
    showError(shown);
  };
  tick();
  rateLimitTimer = setInterval(tick, 1000);
  updateComposer();
  return undefined;
}

function failSend(clientId, pending, reason) {
  clearTimeout(pending.timer);
  pendingSends.delete(clientId);
  failedSends.set(clientId, pending);
  pending.el.dataset.status = "failed";
  const note = $('[data-testid="message-note"]', pending.el);
  note.textContent = "Not sent: " + reason;
  note.className = "message-note note-failed";
  note.hidden = false;
  if (!input.value.trim()) {
    input.value = pending.content;
    autosize();
  }
}

function unfailSend(clientId) {
  const pending = failedSends.get(clientId);
  failedSends.delete(clientId);
  pending.el.dataset.status = "sending";
  $('[data-testid="message-note"]', pending.el).hidden = true;
  if (input.value === pending.content) {
    input.value = "";
    autosize();
  }
  hideError();
  return pending;
}

// --- the sidebar ------------------------------------------------------------------------------

function sidebarItem(id) {
  return sidebarList?.querySelector(`[data-conversation-id="${CSS.escape(id)}"]`) || null;
}

function adoptConversation(id, content) {
  conversationId = id;
  history.replaceState(null, "", urlFor("detail", id));
  if (!sidebarItem(id)) {
    const li = $("#tpl-conversation-item").content.firstElementChild.cloneNode(true);
    li.dataset.conversationId = id;
    $(".conversation-link", li).href = urlFor("detail", id);
    $('[data-action="rename"]', li).dataset.url = urlFor("rename", id);
    $('[data-action="delete"]', li).dataset.url = urlFor("delete", id);
    $('[data-action="pin"]', li).dataset.url = urlFor("pin", id);
    $('[data-action="archive"]', li).dataset.url = urlFor("archive", id);
    sidebarList.prepend(li);
    if (sidebarEmpty) sidebarEmpty.hidden = true;
  }
  for (const item of sidebarList.querySelectorAll(".conversation-item")) {
    const active = item.dataset.conversationId === id;
    item.classList.toggle("is-active", active);
    const link = $(".conversation-link", item);
    if (active) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (content === null) {
    // A blocked first message does not name the conversation: ask the server for its title.
    setTitle(id, titleEl.textContent.trim() || "New chat");
    send({ type: "subscribe", conversation_id: id });
  } else {
    setTitle(id, titleFrom(content));
  }
  $(".suggestions")?.remove();
  const summary = $("#summary-disclosure");
  if (summary) summary.hidden = false;
}

function bumpConversation(id) {
  const item = id && sidebarItem(id);
  if (!item) return;
  // The newest activity goes first, but below the pinned chats (unless it is one of them).
  const lastPinned = [...sidebarList.querySelectorAll('.conversation-item[data-pinned="true"]')].pop();
  if (item.dataset.pinned === "true" || !lastPinned) {
    if (item !== sidebarList.firstElementChild) sidebarList.prepend(item);
  } else if (lastPinned.nextElementSibling !== item) {
    lastPinned.after(item);
  }
}

function setTitle(id, title) {
  const item = sidebarItem(id);
  if (item) {
    $(".conversation-title", item).textContent = title;
    $(".conversation-link", item).title = title;
    $('[data-action="rename"]', item).setAttribute("aria-label", `Rename “${title}”`);
    $('[data-action="delete"]', item).setAttribute("aria-label", `Delete “${title}”`);
    $('[data-action="archive"]', item)?.setAttribute("aria-label", `Archive “${title}”`);
    showPinned(item, item.dataset.pinned === "true");
  }
  if (id === conversationId) {
    titleEl.textContent = title;
    document.title = `${title} · ${siteName}`;
  }
}

async function postAction(url, fields) {
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { Accept: "application/json", "X-CSRFToken": csrfToken() },
    body: new URLSearchParams(fields),
  });
  let payload = null;
  try {
    payload = await response.json();
  } catch {
    // a redirect to the login page, or an HTML error page
  }
  if (!response.ok || !payload) {
    throw new Error(
      payload?.error?.message ||
        (response.redirected ? "Your session has ended. Reload the page to sign in again." : `The server answered ${response.status}. Try again.`),
    );
  }
  return payload;
}

async function renameConversation(item, button) {
  const current = $(".conversation-title", item).textContent.trim();
  const title = window.prompt("Rename conversation", current);
  if (title === null || !title.trim() || title.trim() === current) return;
  try {
    const result = await postAction(button.dataset.url, { title });
    setTitle(item.dataset.conversationId, result.title);
  } catch (error) {
    showError(error.message);
  }
}

async function deleteConversation(item, button) {
  const title = $(".conversation-title", item).textContent.trim();
  if (!window.confirm(`Delete “${title}”? This cannot be undone.`)) return;
  try {
    await postAction(button.dataset.url, {});
  } catch (error) {
    showError(error.message);
    return;
  }
  const id = item.dataset.conversationId;
  item.remove();
  if (sidebarEmpty) sidebarEmpty.hidden = sidebarList.children.length > 0;
  if (id === conversationId) window.location.assign(homeUrl);
}

function showPinned(item, pinned) {
  const button = $('[data-action="pin"]', item);
  const verb = pinned ? "Unpin" : "Pin";
  item.classList.toggle("is-pinned", pinned);
  if (pinned) item.dataset.pinned = "true";
  else delete item.dataset.pinned;
  if (!button) return;
  button.setAttribute("aria-pressed", String(pinned));
  button.setAttribute("aria-label", `${verb} “${$(".conversation-title", item).textContent.trim()}”`);
  button.title = verb;
}

async function pinConversation(item, button) {
  const pinned = item.dataset.pinned !== "true";
  try {
    await postAction(button.dataset.url, { pinned: String(pinned) });
  } catch (error) {
    showError(error.message);
    return;
  }
  showPinned(item, pinned);
  // Pinned chats lead the list, as the server orders them; an unpinned one follows them.
  const lastPinned = [...sidebarList.querySelectorAll('.conversation-item[data-pinned="true"]')].filter((el) => el !== item).pop();
  if (pinned) sidebarList.prepend(item);
  else if (lastPinned) lastPinned.after(item);
  else sidebarList.prepend(item);
}

async function archiveConversation(item, button) {
  try {
    await postAction(button.dataset.url, { archived: "true" });
  } catch (error) {
    showError(error.message);
    return;
  }
  item.remove(); // still reachable on the Archived page, and still open here if it is this one
  if (sidebarEmpty) sidebarEmpty.hidden = sidebarList.children.length > 0;
}

sidebarList?.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-action]");
  const item = button?.closest(".conversation-item");
  if (!button || !item) return;
  event.preventDefault();
  if (button.dataset.action === "rename") renameConversation(item, button);
  else if (button.dataset.action === "delete") deleteConversation(item, button);
  else if (button.dataset.action === "pin") pinConversation(item, button);
  else if (button.dataset.action === "archive") archiveConversation(item, button);
});

function setSidebar(open) {
  app.dataset.sidebar = open ? "open" : "closed";
  $('[data-action="open-sidebar"]')?.setAttribute("aria-expanded", String(open));
}

document.addEventListener("click", (event) => {
  const target = event.target.closest("[data-action]");
  if (!target) return;
  switch (target.dataset.action) {
    case "open-sidebar":
      return setSidebar(true);
    case "close-sidebar":
      return setSidebar(false);
    case "dismiss-error":
      return hideError();
    case "copy":
      return copyText(target, $('[data-testid="message-body"]', target.closest(".message")).innerText);
    case "copy-code":
      return copyText(target, $("pre", target.closest(".code-block")).innerText);
    case "report":
      return openReport(target);
    case "cancel-report":
      return closeReport(target.closest(".report-form"));
    case "branch-step":
      return switchBranch(target);
    case "regenerate":
      return regenerateReply(target);
    case "edit":
      return editMessage(target);
    case "cancel-edit":
      return closeEditor(target.closest(".edit-form"));
    default:
      return undefined;
  }
});

document.addEventListener("keydown", (event) => {
  const reportForm = event.target.closest?.(".report-form");
  if (event.key === "Escape" && reportForm) {
    event.preventDefault();
    closeReport(reportForm);
    return;
  }
  if (event.key === "Escape" && app.dataset.sidebar === "open") setSidebar(false);
  if (event.key === "Escape" && document.querySelector(`:is(${POPOVERS})[open]`)) closePopovers();
});

// --- reporting a reply ------------------------------------------------------------------------

function reportButtonOf(form) {
  return $('[data-action="report"]', form.closest(".message"));
}

function openReport(button) {
  if (button.getAttribute("aria-disabled") === "true") return;
  const messageEl = button.closest(".message");
  const open = $(".report-form", messageEl);
  if (open) {
    $("textarea", open).focus();
    return;
  }
  const form = $("#tpl-report-form").content.firstElementChild.cloneNode(true);
  const id = messageEl.dataset.messageId;
  const field = $("textarea", form);
  field.id = `report-reason-${id}`;
  $(".report-label", form).htmlFor = field.id;
  const error = $(".report-error", form);
  error.id = `report-error-${id}`;
  form.id = `report-${id}`;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    sendReport(form);
  });
  field.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.metaKey || event.ctrlKey)) {
      event.preventDefault();
      sendReport(form);
    }
  });
  $(".message-meta", messageEl).after(form);
  button.setAttribute("aria-expanded", "true");
  button.setAttribute("aria-controls", form.id);
  field.focus();
  revealBelow(form);
}

/** Scroll the thread just enough for an element under the last message to be seen whole. */
function revealBelow(el) {
  const overflow = el.getBoundingClientRect().bottom - thread.getBoundingClientRect().bottom;
  if (overflow > 0) thread.scrollTop += overflow + 12;
}

function closeReport(form, { focus = true } = {}) {
  if (!form) return;
  const button = reportButtonOf(form);
  form.remove();
  button?.setAttribute("aria-expanded", "false");
  button?.removeAttribute("aria-controls");
  if (focus) button?.focus();
}

function showReportError(form, text) {
  const error = $(".report-error", form);
  const field = $("textarea", form);
  error.textContent = text;
  error.hidden = !text;
  if (text) {
    field.setAttribute("aria-invalid", "true");
    field.setAttribute("aria-describedby", error.id);
  } else {
    field.removeAttribute("aria-invalid");
    field.removeAttribute("aria-describedby");
  }
}

async function sendReport(form) {
  const submitBtn = $('[type="submit"]', form);
  if (submitBtn.disabled) return;
  const messageId = Number(form.closest(".message").dataset.messageId);
  const field = $("textarea", form);
  submitBtn.disabled = true;
  submitBtn.textContent = "Sending…";
  showReportError(form, "");
  try {
    await postAction(reportUrl(messageId), { reason: field.value });
  } catch (error) {
    submitBtn.disabled = false;
    submitBtn.textContent = "Send report";
    showReportError(form, error.message);
    field.focus();
    revealBelow(form);
    return;
  }
  const button = reportButtonOf(form);
  closeReport(form, { focus: false });
  if (!button) return;
  button.textContent = REPORTED_LABEL;
  button.setAttribute("aria-label", REPORTED_LABEL);
  button.setAttribute("aria-disabled", "true");
  button.classList.add("is-reported");
  button.title = "A moderator will look at this reply";
  button.focus(); // still focusable (aria-disabled), so the keyboard keeps its place
}

async function copyText(button, text) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
    } else {
      const scratch = document.createElement("textarea");
      scratch.value = text;
      scratch.setAttribute("readonly", "");
      scratch.style.position = "fixed";
      scratch.style.opacity = "0";
      document.body.append(scratch);
      scratch.select();
      document.execCommand("copy");
      scratch.remove();
    }
    const label = button.classList.contains("meta-action") ? button.textContent : null;
    button.classList.add("is-copied");
    if (label !== null) button.textContent = "Copied";
    setTimeout(() => {
      button.classList.remove("is-copied");
      if (label !== null) button.textContent = label;
    }, 1500);
  } catch {
    showError("Could not copy to the clipboard.");
  }
}

// --- the composer -----------------------------------------------------------------------------

function autosize() {
  input.style.height = "auto";
  input.style.height = Math.min(input.scrollHeight, 240) + "px";
  const length = input.value.length;
  const near = length > maxChars * 0.8;
  charCount.hidden = !near;
  charCount.textContent = near ? `${formatNumber(length)} / ${formatNumber(maxChars)}` : "";
  charCount.classList.toggle("is-over", length > maxChars);
  updateComposer();
}

/** A send is on its way and not yet stored: the next one waits (it may need its conversation). */
function awaitingServer() {
  return pendingSends.size > 0;
}

function updateComposer() {
  const streaming = streamingId !== null;
  sendBtn.hidden = streaming;
  stopBtn.hidden = !streaming;
  if (!streaming) stopBtn.disabled = false;
  sendBtn.disabled =
    suspended || awaitingServer() || tray?.busy() || !input.value.trim() || input.value.length > maxChars;
}

function submit() {
  const content = input.value;
  if (!content.trim()) {
    input.focus();
    return;
  }
  if (content.length > maxChars) {
    showError(`That message is ${formatNumber(content.length)} characters; the limit is ${formatNumber(maxChars)}.`);
    return;
  }
  if (suspended || streamingId !== null || awaitingServer()) return; // one reply at a time per conversation
  if (tray?.busy()) return; // the send names the images by id: wait until they are stored
  hideError();
  const clientId = randomId();
  const frame = { type: "send", content, client_id: clientId };
  if (conversationId) frame.conversation_id = conversationId;
  const images = tray ? tray.ready() : [];
  if (images.length) frame.attachments = images.map((image) => image.id);
  const el = appendUserMessage(content, images);
  tray?.clear();
  const pending = { el, content, frame, sent: false, timer: null };
  pendingSends.set(clientId, pending);
  dispatch(clientId, pending);
  input.value = "";
  autosize();
  scrollToBottom(true);
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  submit();
});

tray = form.dataset.uploadUrl
  ? new AttachmentTray({
      tray: $("#composer-attachments"),
      picker: $("#composer-file"),
      button: $('[data-action="attach"]'),
      uploadUrl: form.dataset.uploadUrl,
      csrfToken,
      onChange: () => updateComposer(),
      onError: (text) => showError(text),
    })
  : null;

input.addEventListener("paste", (event) => {
  const files = [...(event.clipboardData?.files || [])].filter((file) => file.type.startsWith("image/"));
  if (!tray || files.length === 0) return;
  event.preventDefault();
  tray.addFiles(files);
});

input.addEventListener("input", autosize);
input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
    event.preventDefault();
    submit();
  }
});

stopBtn.addEventListener("click", () => {
  if (streamingId === null) return;
  if (!send({ type: "stop", conversation_id: conversationId, message_id: streamingId })) return;
  stopBtn.disabled = true;
  // `done` re-enables it; if the reply's process is gone, let the user try again after a while.
  setTimeout(() => {
    stopBtn.disabled = false;
  }, 5000);
});

for (const suggestion of document.querySelectorAll("[data-suggestion]")) {
  suggestion.addEventListener("click", () => {
    input.value = suggestion.dataset.suggestion;
    autosize();
    input.focus();
  });
}

// --- start ------------------------------------------------------------------------------------

if (config) {
  for (const el of list.querySelectorAll(".message[data-message-id]")) {
    const entry = register(el);
    if (entry.role === "assistant" && entry.status !== "streaming") enhance(entry.body);
  }
  for (const item of config.streaming || []) {
    const entry = messages.get(item.messageId);
    if (!entry) continue;
    entry.seq = Math.max(entry.seq, item.seq);
    streamingId = item.messageId;
  }
  autosize();
  if (!highlightTarget()) scrollToBottom(true);
  connect();
}
