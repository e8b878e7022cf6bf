// The web chat: streams /v1/chat/completions, renders the answer's Markdown, lists its sources and
// shows a cited passage when its number is clicked.
//
// Safety: nothing from the model or a document is ever parsed as HTML. The Markdown renderer below
// builds DOM nodes and puts every piece of text in with textContent, so a <script>, an <img
// onerror=...> or an HTML comment in an answer or a passage is shown as the characters it is.
// Links keep only http(s) and mailto addresses.
"use strict";

const $ = (id) => document.getElementById(id);
let history = [];  // earlier {role, content} messages: follow-up questions are condensed server-side

async function loadIndexes() {
  const response = await fetch("v1/models");
  const select = $("index");
  if (!response.ok) return;
  const body = await response.json();
  const health = await (await fetch("health")).json();
  $("strict").checked = health.strict === true;
  for (const model of body.data) {
    const option = new Option(model.id, model.id, false, model.id === health.default_index);
    select.add(option);
  }
}

function where(source) {
  return source.path + (source.page ? `, ${source.page_kind || "page"} ${source.page}` : "");
}

// the heading path arrives as a list of levels, outermost first
function headingPath(source) {
  return (source.heading || []).join(" > ");
}

function showPassage(source) {
  $("passage-where").textContent = where(source);
  $("passage-where").classList.remove("muted");
  $("passage-heading").textContent = headingPath(source);
  $("passage-text").textContent = source.text;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// -- Markdown, a safe subset ------------------------------------------------------------------

const UNSUPPORTED = "[unsupported]";
// code spans, citations ([1], [1, 2]), the unsupported mark, links, bold, italics
const INLINE = /(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)|\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]|\[unsupported\]|\[([^\]\n]+)\]\(([^)\s]+)\)|\*\*(?=\S)([\s\S]*?\S)\*\*|__(?=\S)([\s\S]*?\S)__|(?<![\w*])\*(?=[^\s*])([^*\n]*?[^\s*])\*(?![\w*])|(?<![\w_])_(?=[^\s_])([^_\n]*?[^\s_])_(?![\w_])/g;

function safeHref(href) {
  try {
    const url = new URL(href, "https://invalid.invalid/");
    return ["http:", "https:", "mailto:"].includes(url.protocol) && url.host !== "invalid.invalid" ? url.href : null;
  } catch {
    return null;
  }
}

function citation(numbers, sources) {
  const span = el("span", "citation");
  span.append("[");
  numbers.split(",").map((n) => n.trim()).forEach((n, i) => {
    if (i) span.append(", ");
    const source = sources && sources[Number(n) - 1];
    if (!source) { span.append(n); return; }
    const button = el("button", "cite", n);
    button.type = "button";
    button.title = where(source);
    button.addEventListener("click", () => showPassage(source));
    span.append(button);
  });
  span.append("]");
  return span;
}

function inline(parent, text, sources) {
  let last = 0;
  for (const m of text.matchAll(INLINE)) {
    parent.append(text.slice(last, m.index));
    last = m.index + m[0].length;
    if (m[1]) {
      parent.append(el("code", "", m[2].replace(/^ (.*) $/s, "$1")));
    } else if (m[3]) {
      parent.append(citation(m[3], sources));
    } else if (m[0] === UNSUPPORTED) {
      const mark = el("span", "unsupported", "unsupported");
      mark.title = "No passage supports this sentence";
      parent.append(mark);
    } else if (m[4]) {
      const href = safeHref(m[5]);
      if (href) {
        const link = el("a");
        link.href = href;
        link.rel = "noopener noreferrer nofollow";
        link.target = "_blank";
        inline(link, m[4], sources);
        parent.append(link);
      } else {
        inline(parent, m[4], sources);
      }
    } else {
      const strong = m[6] ?? m[7];
      const node = el(strong !== undefined ? "strong" : "em");
      inline(node, strong ?? m[8] ?? m[9], sources);
      parent.append(node);
    }
  }
  parent.append(text.slice(last));
}

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([\w+.-]*)/;
const HEADING = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const ITEM = /^(\s*)([-*+\u2022]|\d{1,9}[.)])\s+(.*)$/;
const RULE = /^ {0,3}([-*_])(\s*\1){2,}\s*$/;
const TABLE_RULE = /^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$/;
// a command at a prompt, as manuals print it: "$ git clone ...", "% make", ">>> len(x)", and root's
// "# postfix reload" (a "#" before a lowercase word: no heading); rag.answer.citations.COMMAND_LINE
const PROMPT = /^\s*(?:[$%]|>>>|#(?=\s+[a-z]))\s+\S/;
const CONTINUED = /^\s*\.\.\.(\s|$)/;
const TRAILING_MARKS = /\s*((?:\[\d{1,3}(?:\s*,\s*\d{1,3})*\]|\[unsupported\])(?:\s*(?:\[\d{1,3}(?:\s*,\s*\d{1,3})*\]|\[unsupported\]))*)\s*$/;

function cells(line) {
  return line.trim().replace(/^\||\|$/g, "").split("|").map((cell) => cell.trim());
}

// Markdown into `container`, as DOM nodes: fenced and indented code, headings, lists, quotes,
// tables, rules and paragraphs; an unclosed fence (still streaming) is code so far.
function renderMarkdown(container, text, sources) {
  container.textContent = "";
  const lines = text.replace(/\r\n?/g, "\n").split("\n");
  let i = 0;
  let paragraph = [];
  let list = null;
  const flush = () => {
    if (paragraph.length) {
      const p = el("p");
      inline(p, paragraph.join("\n"), sources);
      container.append(p);
      paragraph = [];
    }
  };
  const endList = () => { list = null; };
  while (i < lines.length) {
    const line = lines[i];
    const fence = line.match(FENCE);
    if (fence) {
      flush(); endList();
      const close = new RegExp(`^ {0,3}${fence[1][0]}{${fence[1].length},}\\s*$`);
      const body = [];
      for (i += 1; i < lines.length && !close.test(lines[i]); i += 1) body.push(lines[i]);
      i += 1;
      const pre = el("pre");
      const code = el("code", "", body.join("\n"));
      if (fence[2]) code.dataset.lang = fence[2];
      pre.append(code);
      container.append(pre);
      continue;
    }
    if (!line.trim()) { flush(); endList(); i += 1; continue; }
    if (/^( {4}|\t)/.test(line) && !paragraph.length && !list) {
      const body = [];
      while (i < lines.length && (/^( {4}|\t)/.test(lines[i]) || !lines[i].trim())) {
        body.push(lines[i].replace(/^( {4}|\t)/, ""));
        i += 1;
      }
      while (body.length && !body[body.length - 1].trim()) body.pop();
      const pre = el("pre");
      pre.append(el("code", "", body.join("\n")));
      container.append(pre);
      continue;
    }
    if (PROMPT.test(line) && !list) {  // commands: code, and their citations after them
      flush();
      const body = [];
      while (i < lines.length && lines[i].trim() && (PROMPT.test(lines[i]) || CONTINUED.test(lines[i])
             || (body.length && /\\\s*$/.test(body[body.length - 1])))) {
        body.push(lines[i]);
        i += 1;
      }
      const marks = body[body.length - 1].match(TRAILING_MARKS);
      if (marks) body[body.length - 1] = body[body.length - 1].slice(0, marks.index);
      const pre = el("pre");
      pre.append(el("code", "", body.join("\n")));
      container.append(pre);
      if (marks) {
        const cited = el("p", "cited");
        inline(cited, marks[1], sources);
        container.append(cited);
      }
      continue;
    }
    const heading = line.match(HEADING);
    if (heading) {
      flush(); endList();
      const node = el(`h${Math.min(heading[1].length + 2, 6)}`);
      inline(node, heading[2], sources);
      container.append(node);
      i += 1;
      continue;
    }
    if (RULE.test(line) && !paragraph.length) {
      endList();
      container.append(el("hr"));
      i += 1;
      continue;
    }
    if (line.includes("|") && i + 1 < lines.length && TABLE_RULE.test(lines[i + 1])) {
      flush(); endList();
      const table = el("table");
      const head = el("tr");
      cells(line).forEach((cell) => { const th = el("th"); inline(th, cell, sources); head.append(th); });
      table.append(head);
      for (i += 2; i < lines.length && lines[i].includes("|") && lines[i].trim(); i += 1) {
        const row = el("tr");
        cells(lines[i]).forEach((cell) => { const td = el("td"); inline(td, cell, sources); row.append(td); });
        table.append(row);
      }
      container.append(table);
      continue;
    }
    const item = line.match(ITEM);
    if (item) {
      flush();
      const ordered = /\d/.test(item[2]);
      if (!list || list.ordered !== ordered) {
        list = { ordered, node: el(ordered ? "ol" : "ul") };
        if (ordered && parseInt(item[2], 10) !== 1) list.node.start = parseInt(item[2], 10);
        container.append(list.node);
      }
      const li = el("li");
      if (item[1].length >= 2) li.className = "nested";
      inline(li, item[3], sources);
      list.node.append(li);
      list.last = li;
      i += 1;
      continue;
    }
    if (/^ {0,3}>/.test(line)) {
      flush(); endList();
      const quote = el("blockquote");
      const body = [];
      while (i < lines.length && /^ {0,3}>/.test(lines[i])) body.push(lines[i++].replace(/^ {0,3}> ?/, ""));
      renderMarkdown(quote, body.join("\n"), sources);
      container.append(quote);
      continue;
    }
    if (list && /^\s+\S/.test(line)) {  // a list item's continuation line
      list.last.append(" ");
      inline(list.last, line.trim(), sources);
      i += 1;
      continue;
    }
    endList();
    paragraph.push(line);
    i += 1;
  }
  flush();
}

// -- sources and the working state ------------------------------------------------------------

function renderSources(list, sources) {
  list.textContent = "";
  const cited = sources.filter((s) => s.cited);
  const shown = cited.length ? cited : sources;
  if (!shown.length) return;
  list.append(el("li", "sources-title", cited.length ? "Sources" : "Retrieved passages"));
  for (const source of shown) {
    const item = el("li");
    const button = el("button", "cite", `[${source.rank}] ${where(source)}`);
    button.type = "button";
    button.addEventListener("click", () => showPassage(source));
    item.append(button);
    if (headingPath(source)) item.append(` (${headingPath(source)})`);
    list.append(item);
  }
}

function working(status, label) {
  const started = performance.now();
  const show = () => {
    const seconds = Math.floor((performance.now() - started) / 1000);
    status.querySelector(".label").textContent = seconds >= 2 ? `${status.dataset.label} ${seconds} s` : status.dataset.label;
  };
  status.dataset.label = label;
  status.replaceChildren(el("span", "spinner"), el("span", "label", label));
  status.hidden = false;
  const timer = setInterval(show, 1000);
  return {
    set(next) { status.dataset.label = next; show(); },
    done() { clearInterval(timer); status.hidden = true; },
  };
}

async function ask(question) {
  const turn = el("div", "turn");
  const asked = el("div", "asked", question);
  const status = el("div", "status");
  const answer = el("div", "answer");
  const list = el("ul", "sources");
  turn.append(asked, status, answer, list);
  $("turns").prepend(turn);
  const state = working(status, "Searching…");
  try {
    await stream(question, turn, answer, list, state);
  } finally {
    state.done();
  }
}

async function stream(question, turn, answer, list, state) {
  const messages = [...history, { role: "user", content: question }];
  const response = await fetch("v1/chat/completions", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    // progress: the server sends the passages it found before the answer is written
    body: JSON.stringify({ model: $("index").value, messages, stream: true, sources_in_content: false,
                           progress: true, strict: $("strict").checked }),
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
  let frame = 0;
  const draw = () => { frame = 0; renderMarkdown(answer, text, sources); };
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
        if (sources) renderSources(list, sources);
        return;
      }
      if (chunk.sources) {
        sources = chunk.sources;
        renderSources(list, sources);
      }
      if (chunk.answer_mode === "llm" && !text) state.set("Writing…");
      text += chunk.choices[0].delta.content || "";
      if (!frame) frame = requestAnimationFrame(draw);
    }
  }
  if (frame) cancelAnimationFrame(frame);
  renderMarkdown(answer, text, sources);
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
