// The web chat: streams /v1/chat/completions and shows a cited passage when its number is clicked.
"use strict";

const $ = (id) => document.getElementById(id);
let history = [];  // earlier {role, content} messages: follow-up questions are condensed server-side

async function loadIndexes() {
  const response = await fetch("v1/models");
  const select = $("index");
  if (!response.ok) return;
  const body = await response.json();
  const health = await (await fetch("health")).json();
  for (const model of body.data) {
    const option = new Option(model.id, model.id, false, model.id === health.default_index);
    select.add(option);
  }
}

function where(source) {
  return source.path + (source.page ? `, ${source.page_kind || "page"} ${source.page}` : "");
}

function showPassage(source) {
  $("passage-where").textContent = where(source);
  $("passage-where").classList.remove("muted");
  $("passage-heading").textContent = source.heading || "";
  $("passage-text").textContent = source.text;
}

// The answer's text with every [n] (and [n, m]) turned into a button once the sources are known.
function renderAnswer(element, text, sources) {
  element.textContent = "";
  const citation = /\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]/g;
  let last = 0;
  for (const match of text.matchAll(citation)) {
    element.append(text.slice(last, match.index));
    element.append("[");
    match[1].split(",").map((n) => n.trim()).forEach((n, i) => {
      if (i) element.append(", ");
      const source = sources && sources[Number(n) - 1];
      if (!source) { element.append(n); return; }
      const button = document.createElement("button");
      button.className = "cite";
      button.type = "button";
      button.textContent = n;
      button.title = where(source);
      button.addEventListener("click", () => showPassage(source));
      element.append(button);
    });
    element.append("]");
    last = match.index + match[0].length;
  }
  element.append(text.slice(last));
}

function renderSources(list, sources) {
  list.textContent = "";
  for (const source of sources.filter((s) => s.cited)) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.className = "cite";
    button.type = "button";
    button.textContent = `[${source.rank}] ${where(source)}`;
    button.addEventListener("click", () => showPassage(source));
    item.append(button);
    if (source.heading) item.append(` (${source.heading})`);
    list.append(item);
  }
}

async function ask(question) {
  const turn = document.createElement("div");
  turn.className = "turn";
  const asked = document.createElement("div");
  asked.className = "asked";
  asked.textContent = question;
  const answer = document.createElement("div");
  answer.className = "answer";
  const list = document.createElement("ul");
  list.className = "sources";
  turn.append(asked, answer, list);
  $("turns").prepend(turn);

  const messages = [...history, { role: "user", content: question }];
  const response = await fetch("v1/chat/completions", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ model: $("index").value, messages, stream: true, sources_in_content: false }),
  });
  if (!response.ok) {
    const body = await response.json().catch(() => ({ error: { message: response.statusText } }));
    answer.className = "answer error";
    answer.textContent = body.error.message;
    return;
  }
  let text = "";
  let sources = null;
  let buffer = "";
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    const events = buffer.split("\n\n");
    buffer = events.pop();
    for (const event of events) {
      const data = event.replace(/^data: /, "");
      if (data === "[DONE]") continue;
      const chunk = JSON.parse(data);
      if (chunk.error) {
        answer.className = "answer error";
        answer.textContent = (text ? text + "\n\n" : "") + chunk.error.message;
        return;
      }
      text += chunk.choices[0].delta.content || "";
      if (chunk.sources) sources = chunk.sources;
      renderAnswer(answer, text, sources);
    }
  }
  if (sources) renderSources(list, sources);
  turn.dataset.done = "true";
  history = [...messages, { role: "assistant", content: text }].slice(-12);
}

$("ask").addEventListener("submit", async (event) => {
  event.preventDefault();
  const question = $("question").value.trim();
  if (!question) return;
  $("question").value = "";
  $("send").disabled = true;
  try {
    await ask(question);
  } catch (error) {
    console.error(error);
  } finally {
    $("send").disabled = false;
    $("question").focus();
  }
});

$("reset").addEventListener("click", () => {
  history = [];
  $("turns").textContent = "";
});

loadIndexes();
