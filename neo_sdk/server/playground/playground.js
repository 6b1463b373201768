// The neo playground: a reference client of this server's /v1 API, with no build step and no
// request to any other origin. The API key lives in this tab only (sessionStorage), never in a URL.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY_SLOT = "neo-playground-key";

const state = {
  key: sessionStorage.getItem(KEY_SLOT) || "",
  model: "neo",
  vocab: null,
  user: "",        // "" = visitor
  sessionId: newSessionId(),
  busy: false,
};

function newSessionId() {
  const bytes = new Uint8Array(6);
  crypto.getRandomValues(bytes);
  return "pg-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// ------------------------------------------------------------------ elements
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// ---------------------------------------------------------------------- API
class ApiError extends Error {
  constructor(status, message, retryAfter, code) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
    this.code = code;
  }
}

async function errorOf(response) {
  let message = response.statusText, code = null;
  try {
    const body = await response.json();
    if (body && body.error) ({ message, code } = body.error);
  } catch (_) { /* not JSON */ }
  return new ApiError(response.status, message, response.headers.get("Retry-After"), code);
}

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}), Authorization: `Bearer ${state.key}` };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { ...options, headers, body: options.body === undefined ? undefined : JSON.stringify(options.body) });
  } catch (err) {
    throw new ApiError(0, "the server cannot be reached");
  }
  if (!response.ok) throw await errorOf(response);
  return response;
}

const getJSON = async (path) => (await api(path)).json();

/** A message a person understands, for an error of the API. */
function humanError(err) {
  switch (err.status) {
    case 0: return "The server cannot be reached. Is `neo serve` still running?";
    case 401: return "This API key was not accepted. Check it (a key of this server: `neo serve --keys` or $NEO_API_KEYS) and sign in again.";
    case 413: return "That request is too large for this server. Shorten the message and send it again.";
    case 429: return `The server is busy with other requests. Try again in ${err.retryAfter || "a few"} second${err.retryAfter === "1" ? "" : "s"}.`;
    case 503: return `The model is not ready (${err.message}). Try again in ${err.retryAfter || "a few"} seconds.`;
    case 504: return "The answer took longer than this server allows and was stopped. Ask for fewer items or a shorter answer.";
    default: return err.status ? `The server refused the request (${err.status}): ${err.message}` : String(err.message || err);
  }
}

function notify(message, kind = "error") {
  const box = $("notice");
  box.textContent = message;
  box.className = `notice ${kind}`;
  box.hidden = !message;
}

// -------------------------------------------------------------------- cards
function card(item, rank) {
  const badges = [];
  if (item.role === "cited") badges.push(el("span", { class: "badge cited", text: "cited by the explanation" }));
  if (item.new) badges.push(el("span", { class: "badge new", text: "new since training" }));
  return el("article", { class: `card ${item.role || "answer"}`, dataset: { itemId: item.id, type: item.type, role: item.role || "answer" } },
    el("h4", { class: "title" }, rank ? el("span", { class: "rank", text: `${rank}.` }) : null, item.title),
    el("p", { class: "meta" },
      el("span", { class: "type", text: item.type }),
      item.year ? el("span", { class: "year", text: ` · ${item.year}` }) : null, " ", badges),
    el("p", { class: "cats" }), el("p", { class: "rel" }));
}

/** Fill cards with category values and related items (one request for all of them). */
async function enrich(container) {
  const cards = [...container.querySelectorAll(".card:not(.enriched)")];
  const ids = [...new Set(cards.map((c) => c.dataset.itemId))];
  if (!ids.length) return;
  const query = ids.map((id) => `id=${encodeURIComponent(id)}`).join("&");
  try {
    const { data } = await getJSON(`/v1/items?${query}`);
    const byId = Object.fromEntries(data.map((c) => [c.id, c]));
    for (const node of cards) {
      const info = byId[node.dataset.itemId];
      if (!info) continue;
      node.querySelector(".cats").textContent = info.categories.join(", ");
      const groups = {};
      for (const link of info.related) (groups[link.words] ||= []).push(link.title);
      node.querySelector(".rel").textContent = Object.entries(groups)
        .map(([words, titles]) => `${words}: ${titles.slice(0, 3).join(", ")}${titles.length > 3 ? "…" : ""}`).join("; ");
      node.classList.add("enriched");
    }
  } catch (err) {
    notify(humanError(err));
  }
}

// ---------------------------------------------------------------- messages
function addUserMessage(text) {
  const node = el("div", { class: "msg user" }, el("p", { class: "who", text: "You" }), el("p", { class: "text", text }));
  $("log").append(node);
  return node;
}

function addAssistantMessage() {
  const node = el("div", { class: "msg assistant", "aria-busy": "true" },
    el("p", { class: "who", text: "neo" }), el("div", { class: "text" }), el("div", { class: "cards" }));
  $("log").append(node);
  return node;
}

function appendText(message, text, item) {
  const box = message.querySelector(".text");
  if (item) {
    box.append(el("mark", { class: "item-ref", dataset: { itemId: item.id }, title: `${item.type} ${item.id}`, text }));
    const cards = message.querySelector(".cards");
    const answers = cards.querySelectorAll(".card.answer").length;
    cards.append(card(item, item.role === "cited" ? null : answers + 1));
  } else if (text) {
    box.append(document.createTextNode(text));
  }
  message.scrollIntoView({ block: "end" });
}

function row(name, value) {
  return value === null || value === undefined || value === "" || (Array.isArray(value) && !value.length)
    ? null : el("tr", {}, el("th", { text: name }), el("td", { text: Array.isArray(value) ? value.join(", ") : String(value) }));
}

/** The "why" panel: how the request was read, the explanation's checked claims, timings, tokens. */
function whyPanel(answer, usage) {
  const r = answer.request;
  const focus = r.focus ? titleOf(r.focus, answer) : null;
  const related = (r.related || []).map(([relation, id]) => `${relation || "any relation"} → ${id}`);
  const years = r.year_min || r.year_max ? `${r.year_min || "…"}–${r.year_max || "…"}` : null;
  const read = el("table", { class: "kv" }, el("tbody", {},
    row("task", r.task), row("entity type", r.entity_type), row("format", r.format), row("items (k)", r.k),
    row("this (focus)", focus), row("search words", r.query), row("years", years), row("categories", r.categories),
    row("related to", related), row("excluded", (r.exclude || []).length ? `${r.exclude.length} item(s)` : null),
    row("refines turn", r.refines), row("question", r.aspect),
    row("narrows to", (r.within || []).length ? `${r.within.length} item(s) of the last list` : null)));
  const parts = [el("h4", { text: "How the request was read" }), read];
  if (r.reasons && r.reasons.length) parts.push(el("ul", { class: "reasons" }, r.reasons.map((t) => el("li", { text: t }))));
  const check = answer.explanation_check;
  if (answer.explained_by || check) {
    parts.push(el("h4", { text: "Explanation check" }));
    parts.push(el("p", { class: "explained", text: `Shown text written by: ${answer.explained_by || "—"}` +
      (check ? ` · ${check.true} of ${check.claims} checkable claim(s) true` : "") }));
    if (check && check.checked && check.checked.length) {
      parts.push(el("ul", { class: "claims" }, check.checked.map((c) => el("li", { class: c.holds ? "true" : "false" },
        el("span", { class: "verdict", text: c.holds ? "✓ true" : "✗ false" }), ` ${c.kind}: “${c.text}”`,
        c.reason ? el("span", { class: "muted", text: ` — ${c.reason}` }) : null))));
    }
    if (check && check.faults && check.faults.length) {
      parts.push(el("ul", { class: "claims" }, check.faults.map((f) => el("li", { class: "false" },
        el("span", { class: "verdict", text: "✗ reads wrong" }), ` ${f.kind}: “${f.text}”`,
        el("span", { class: "muted", text: ` — ${f.reason}` })))));
    }
    if (check && check.model_text) parts.push(el("p", { class: "muted", text: `The model wrote (not shown, it failed the check): ${check.model_text}` }));
  }
  const timings = Object.entries(answer.timings || {}).map(([k, v]) => `${k} ${Math.round(v)} ms`).join(" · ");
  if (timings) parts.push(el("h4", { text: "Timings" }), el("p", { class: "timings", text: timings }));
  const tokens = usage || answer.usage;
  if (tokens && Object.keys(tokens).length) {
    parts.push(el("h4", { text: "Tokens" }), el("p", { class: "usage",
      text: `prompt ${tokens.prompt_tokens ?? "?"} · completion ${tokens.completion_tokens ?? "?"} · total ${tokens.total_tokens ?? ((tokens.prompt_tokens || 0) + (tokens.completion_tokens || 0))}` }));
  }
  return el("details", { class: "why" }, el("summary", { text: "Why this answer" }), ...parts);
}

/** An item's title from the answer or a card on the page (else its id; the card request fills it in). */
function titleOf(id, answer) {
  const item = answer.items.find((i) => i.id === id);
  if (item) return item.title;
  const shown = document.querySelector(`.card[data-item-id="${CSS.escape(id)}"] .title`);
  return shown ? shown.textContent.replace(/^\d+\.\s*/, "") : id;
}

function finish(message, answer, usage) {
  message.setAttribute("aria-busy", "false");
  message.classList.add("done");
  message.dataset.turn = answer.turn;
  message.dataset.task = answer.task;
  message.dataset.entityType = answer.entity_type;
  const text = message.querySelector(".text");
  if (!answer.items.length && !text.textContent.trim()) text.append("No matching item.");
  message.append(whyPanel(answer, usage));
  enrich(message);
}

/** A stored answer (a resumed session), drawn without streaming. */
function drawAnswer(answer) {
  addUserMessage(answer.request.text);
  const message = addAssistantMessage();
  for (const seg of answer.segments) {
    if (seg.kind === "item") appendText(message, itemLabel(seg.item), seg.item);
    else appendText(message, seg.text);
  }
  if (!answer.segments.length) for (const item of answer.items) appendText(message, itemLabel(item), item);
  finish(message, answer, answer.usage);
}

const itemLabel = (item) => (item.year && !item.title.includes(String(item.year)) ? `${item.title} (${item.year})` : item.title);

// ------------------------------------------------------------------- asking
function steering() {
  const out = {};
  const task = $("s-task").value, type = $("s-type").value, format = $("s-format").value, k = $("s-k").value;
  if (task) out.task = task;
  if (type) out.entity_type = type;
  if (format) out.format = format;
  if (k) out.k = Number(k);
  const filters = {};
  if ($("s-category").value) filters.categories = [$("s-category").value];
  if ($("s-year-min").value) filters.year_min = Number($("s-year-min").value);
  if ($("s-year-max").value) filters.year_max = Number($("s-year-max").value);
  if (Object.keys(filters).length) out.filters = filters;
  return out;
}

async function ask(text) {
  if (state.busy || !text.trim()) return;
  if (!state.key) { notify("Sign in with an API key first."); $("key").focus(); return; }
  state.busy = true;
  $("send").disabled = true;
  notify("");
  $("hint")?.remove();
  addUserMessage(text);
  const message = addAssistantMessage();
  const body = { model: state.model, messages: [{ role: "user", content: text }], stream: true,
    stream_options: { include_usage: true }, session_id: state.sessionId, ...steering() };
  if (state.user) body.user = state.user;
  try {
    const response = await api("/v1/chat/completions", { method: "POST", body });
    let answer = null, usage = null;
    for await (const event of events(response)) {
      if (event.error) throw new ApiError(event.error.code === "timeout" ? 504 : 500, event.error.message);
      if (event.usage) usage = event.usage;
      const choice = event.choices && event.choices[0];
      if (!choice) continue;
      const delta = choice.delta || {};
      if (delta.neo_items) for (const item of delta.neo_items) appendText(message, delta.content, item);
      else if (delta.content) appendText(message, delta.content);
      if (delta.neo) answer = delta.neo;
    }
    if (!answer) throw new ApiError(500, "the stream ended without an answer");
    finish(message, answer, usage);
    refreshSessions();
  } catch (err) {
    message.classList.add("failed");
    message.setAttribute("aria-busy", "false");
    message.querySelector(".text").append(el("p", { class: "error", text: humanError(err) }));
    notify(humanError(err));
    if (err.status === 401) signedOut();
  } finally {
    state.busy = false;
    $("send").disabled = false;
  }
}

/** The JSON events of a server-sent event stream (``data: {...}`` lines up to ``data: [DONE]``). */
async function* events(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of block.split("\n")) {
        if (!line.startsWith("data: ")) continue;
        const data = line.slice(6);
        if (data === "[DONE]") return;
        yield JSON.parse(data);
      }
    }
  }
}

// --------------------------------------------------------- users, sessions
async function chooseUser(user) {
  state.user = user.trim();
  $("user").value = state.user;
  startSession();
  const history = $("history");
  history.replaceChildren();
  if (!state.user) { $("who-now").textContent = "Visitor: no history."; return; }
  try {
    const info = await getJSON(`/v1/users/${encodeURIComponent(state.user)}?recent=8`);
    $("who-now").textContent = `User ${info.id}: ${info.interactions} interactions; newest first:`;
    info.recent.forEach((item) => history.append(card(item)));
    enrich(history);
  } catch (err) {
    if (err.status === 404) {
      $("who-now").textContent = `No user “${state.user}” in this catalog: asking as a visitor.`;
      state.user = "";
    } else notify(humanError(err));
  }
}

function startSession(id = newSessionId()) {
  state.sessionId = id;
  $("log").replaceChildren();
  for (const item of $("sessions").querySelectorAll("li")) item.classList.toggle("current", item.dataset.id === id);
}

async function refreshSessions() {
  try {
    const { data } = await getJSON("/v1/sessions?limit=20");
    $("sessions").replaceChildren(...data.map((s) => el("li", { class: s.id === state.sessionId ? "current" : "", dataset: { id: s.id } },
      el("span", { class: "session-name", text: `${s.user ? "user " + s.user : "visitor"} · ${s.turns} turn${s.turns === 1 ? "" : "s"}` }),
      el("span", { class: "muted", text: ` ${new Date(s.updated * 1000).toLocaleString()}` }),
      el("span", { class: "row" },
        el("button", { type: "button", class: "resume", "aria-label": `Resume session ${s.id}`, onclick: () => resume(s.id), text: "Resume" }),
        el("button", { type: "button", class: "delete", "aria-label": `Delete session ${s.id}`, onclick: () => removeSession(s.id), text: "Delete" })))));
  } catch (err) {
    notify(humanError(err));
  }
}

async function resume(id) {
  try {
    const record = await getJSON(`/v1/sessions/${encodeURIComponent(id)}`);
    state.user = record.user || "";
    $("user").value = state.user;
    $("who-now").textContent = state.user ? `User ${state.user} (resumed session)` : "Visitor (resumed session)";
    startSession(id);
    record.turns.forEach(drawAnswer);
  } catch (err) {
    notify(humanError(err));
  }
}

async function removeSession(id) {
  try {
    await api(`/v1/sessions/${encodeURIComponent(id)}`, { method: "DELETE" });
    if (id === state.sessionId) startSession();
    refreshSessions();
  } catch (err) {
    notify(humanError(err));
  }
}

// --------------------------------------------------------------- sign in
function fillSelect(select, values, keep = 1) {
  while (select.options.length > keep) select.remove(keep);
  for (const value of values) select.append(el("option", { value, text: value }));
}

function fillCategories() {
  const type = $("s-type").value || state.vocab.default_type;
  const info = state.vocab.types.find((t) => t.name === type);
  fillSelect($("s-category"), info ? info.categories : []);
}

async function signIn(key) {
  state.key = key.trim();
  if (!state.key) { notify("Enter an API key of this server."); return; }
  try {
    state.vocab = await getJSON("/v1/catalog");
  } catch (err) {
    notify(humanError(err));
    if (err.status === 401) signedOut();
    return;
  }
  sessionStorage.setItem(KEY_SLOT, state.key);
  $("key").value = "";
  $("signin").hidden = true;
  $("signout").hidden = false;
  notify(`Signed in. ${state.vocab.types.map((t) => `${t.items} ${t.plural}`).join(", ")}; ${state.vocab.users} users.`, "ok");
  fillSelect($("s-task"), state.vocab.tasks);
  fillSelect($("s-type"), state.vocab.types.map((t) => t.name));
  fillSelect($("s-format"), state.vocab.formats);
  fillCategories();
  try {
    const models = await getJSON("/v1/models");
    state.model = models.data[0].id;
    $("model").textContent = `model ${state.model}`;
    const users = await getJSON("/v1/users?limit=100");
    $("users").replaceChildren(...users.data.map((u) => el("option", { value: u.id, text: `${u.interactions} interactions` })));
  } catch (err) {
    notify(humanError(err));
  }
  refreshSessions();
}

function signedOut() {
  state.key = "";
  sessionStorage.removeItem(KEY_SLOT);
  $("signin").hidden = false;
  $("signout").hidden = true;
  $("key").focus();
}

async function health() {
  try {
    const response = await fetch("/health");
    const body = await response.json();
    $("health").textContent = body.status;
    $("health").className = `pill ${body.status === "ok" ? "ok" : "warn"}`;
    if (body.status === "loading") setTimeout(health, 2000);
  } catch (_) {
    $("health").textContent = "unreachable";
    $("health").className = "pill warn";
  }
}

// ------------------------------------------------------------------ wiring
document.addEventListener("DOMContentLoaded", () => {
  $("signin").addEventListener("submit", (e) => { e.preventDefault(); signIn($("key").value); });
  $("signout").addEventListener("click", () => { signedOut(); notify("Signed out: the key is forgotten by this tab.", "ok"); });
  $("who").addEventListener("submit", (e) => { e.preventDefault(); chooseUser($("user").value); });
  $("visitor").addEventListener("click", () => chooseUser(""));
  $("new-session").addEventListener("click", () => { startSession(); refreshSessions(); });
  $("s-type").addEventListener("change", fillCategories);
  $("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("text").value;
    $("text").value = "";
    ask(text);
  });
  $("text").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); $("composer").requestSubmit(); }
  });
  health();
  if (state.key) signIn(state.key); else $("key").focus();
});
