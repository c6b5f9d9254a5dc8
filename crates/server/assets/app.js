// The operonx web view: the runs list (/) and a run's page (/runs/{id}). Plain
// JavaScript, no dependencies: it calls the HTTP API like any client, with the bearer
// token the page asks for once when the server wants one (kept in this browser's
// localStorage). A run's events come over the SSE stream of /v1/runs/{id}/events, read
// with fetch so the token can be sent, and picked up again after the last event seen.
"use strict";

const TOKEN_KEY = "operonx.token";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function headers(extra) {
  const h = Object.assign({}, extra || {});
  const token = localStorage.getItem(TOKEN_KEY);
  if (token) h["Authorization"] = "Bearer " + token;
  return h;
}

class NeedToken extends Error {}

async function api(method, path, body) {
  const init = { method, headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const r = await fetch(path, init);
  if (r.status === 401) throw new NeedToken();
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = text; }
  if (!r.ok) {
    const detail = data && data.detail ? data.detail : r.status + " " + r.statusText;
    throw new Error(detail);
  }
  return data;
}

function askToken(main, then) {
  main.replaceChildren();
  const input = el("input", { type: "password", id: "token", placeholder: "token", autocomplete: "off" });
  const form = el("form", { id: "token-form", onsubmit: (e) => {
    e.preventDefault();
    localStorage.setItem(TOKEN_KEY, input.value.trim());
    then();
  } }, el("p", {}, "This server needs a token."), input, el("button", { type: "submit" }, "Use token"));
  main.append(form);
  input.focus();
}

function guarded(main, render) {
  const go = () => render().catch((e) => {
    if (e instanceof NeedToken) askToken(main, go);
    else main.append(el("p", { class: "error" }, String(e.message || e)));
  });
  return go;
}

function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return d.toLocaleString();
}

function badge(status) {
  return el("span", { class: "status status-" + status, "data-status": status }, status);
}

// ---- the runs list ------------------------------------------------------------------

async function runsPage(main) {
  const params = new URLSearchParams(location.search);
  const graphs = (await api("GET", "/v1/graphs")).graphs;
  const status = params.get("status") || "";
  const graph = params.get("graph") || "";
  const q = new URLSearchParams({ limit: "100" });
  if (status) q.set("status", status);
  if (graph) q.set("graph", graph);
  const page = await api("GET", "/v1/runs?" + q.toString());
  main.replaceChildren();

  const statusSel = el("select", { name: "status", id: "filter-status" }, el("option", { value: "" }, "any status"));
  for (const s of ["queued", "running", "waiting", "failed", "cancelled", "timed_out", "crashed", "done"]) {
    const o = el("option", { value: s }, s);
    if (s === status) o.selected = true;
    statusSel.append(o);
  }
  const graphSel = el("select", { name: "graph", id: "filter-graph" }, el("option", { value: "" }, "any graph"));
  for (const g of graphs) {
    const o = el("option", { value: g.name }, g.name);
    if (g.name === graph) o.selected = true;
    graphSel.append(o);
  }
  main.append(el("form", { class: "filters", method: "get", action: "/" }, statusSel, graphSel,
    el("button", { type: "submit" }, "Filter")));

  // Start a run.
  const startGraph = el("select", { id: "start-graph" });
  for (const g of graphs) startGraph.append(el("option", { value: g.name }, g.name));
  const inputs = el("textarea", { id: "start-inputs", rows: "3" }, "{}");
  const message = el("span", { class: "error", id: "start-error" });
  main.append(el("form", { class: "start", id: "start-form", onsubmit: async (e) => {
    e.preventDefault();
    message.textContent = "";
    let parsed;
    try { parsed = JSON.parse(inputs.value || "{}"); } catch (err) { message.textContent = "inputs: " + err.message; return; }
    try {
      const r = await api("POST", "/v1/runs", { graph: startGraph.value, inputs: parsed });
      location.href = "/runs/" + r.run_id;
    } catch (err) { message.textContent = String(err.message || err); }
  } }, el("label", {}, "Start a run of ", startGraph), el("label", {}, " with inputs ", inputs),
    el("button", { type: "submit", id: "start-button" }, "Start"), message));

  const rows = page.runs.map((r) => el("tr", { "data-run": r.run_id },
    el("td", {}, el("a", { href: "/runs/" + r.run_id, class: "run-id" }, r.run_id)),
    el("td", {}, r.graph), el("td", {}, badge(r.status)), el("td", {}, when(r.created_at)),
    el("td", { class: "num" }, r.duration_s.toFixed(2) + " s"), el("td", { class: "num" }, r.ops === undefined ? r.journal_entries : r.ops),
    el("td", { class: "num" }, r.errors === undefined ? "" : r.errors),
    el("td", { class: "num" }, r.tokens === undefined ? "" : r.tokens),
    el("td", { class: "num" }, r.cost_usd === undefined ? "" : "$" + r.cost_usd.toFixed(4))));
  main.append(el("table", { id: "runs" },
    el("thead", {}, el("tr", {}, ...["run", "graph", "status", "started", "duration", "ops", "errors", "tokens", "cost"]
      .map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows)));
  if (page.runs.length === 0) main.append(el("p", { id: "no-runs" }, "No runs yet."));
}

// ---- one run ----------------------------------------------------------------------

async function runPage(main) {
  const id = location.pathname.split("/").pop();
  document.title = "operonx run " + id;
  const state = { lastId: 0, events: [], run: null, refreshing: false };
  const head = el("div", { id: "run-head" });
  const answer = el("div", { id: "answer" });
  const result = el("pre", { id: "result" });
  const tree = el("pre", { id: "tree" });
  const timeline = el("pre", { id: "timeline" });
  const events = el("ol", { id: "events" });
  main.replaceChildren(head, answer, el("h2", {}, "Result"), result, el("h2", {}, "Tree"), tree,
    el("h2", {}, "Timeline"), timeline, el("h2", {}, "Events"), events);

  async function refresh() {
    if (state.refreshing) return;
    state.refreshing = true;
    try {
      const run = await api("GET", "/v1/runs/" + id);
      state.run = run;
      const cancel = ["queued", "running", "waiting"].includes(run.status)
        ? el("button", { id: "cancel", onclick: async () => { await api("POST", "/v1/runs/" + id + "/cancel"); refresh(); } }, "Cancel")
        : null;
      head.replaceChildren(el("p", {}, el("code", { id: "run-id" }, run.run_id), " ", run.graph, " ", badge(run.status),
        " started ", when(run.created_at), " · ", run.duration_s.toFixed(2), " s", run.reason ? " · " + run.reason : "", " ", cancel));
      result.textContent = run.result ? JSON.stringify(run.result, null, 2) : "(not yet)";
      renderAnswers(run);
      try {
        const trace = await api("GET", "/v1/runs/" + id + "/trace");
        tree.textContent = trace.tree;
        timeline.textContent = trace.timeline;
      } catch (e) {
        if (e instanceof NeedToken) throw e;
        tree.textContent = timeline.textContent = "(no trace kept by this server for this run)";
      }
    } finally {
      state.refreshing = false;
    }
  }

  // The form is drawn once per set of questions: a refresh must not wipe what is typed.
  let asked = "";
  function renderAnswers(run) {
    const waiting = run.status === "waiting" && run.pending && run.pending.length > 0;
    const key = waiting ? run.pending.map((p) => p.id).join("\n") : "";
    if (key === asked) return;
    asked = key;
    answer.replaceChildren();
    if (!waiting) return;
    const fields = run.pending.map((p) => {
      const input = el("input", { type: "text", name: p.id, "data-interrupt": p.id, class: "answer-input" });
      return { p, input };
    });
    const msg = el("span", { class: "error" });
    answer.append(el("form", { id: "answer-form", onsubmit: async (e) => {
      e.preventDefault();
      const answers = {};
      for (const { p, input } of fields) {
        let v = input.value;
        try { v = JSON.parse(v); } catch (_) { /* a plain string */ }
        answers[p.id] = v;
      }
      try { await api("POST", "/v1/runs/" + id + "/resume", { answers }); follow(); refresh(); }
      catch (err) { msg.textContent = String(err.message || err); }
    } }, el("h2", {}, "The run asks"),
      ...fields.map(({ p, input }) => el("label", {}, el("span", { class: "question" }, p.id + ": " +
        (typeof p.payload === "string" ? p.payload : JSON.stringify(p.payload))), input)),
      el("button", { type: "submit", id: "answer-button" }, "Answer"), msg));
  }

  let following = false;
  async function follow() {
    if (following) return;
    following = true;
    try {
      for (;;) {
        const h = headers({ Accept: "text/event-stream" });
        if (state.lastId) h["Last-Event-ID"] = String(state.lastId);
        const r = await fetch("/v1/runs/" + id + "/events", { headers: h });
        if (r.status === 401) throw new NeedToken();
        if (!r.ok) return;
        const reader = r.body.getReader();
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
            let evId = null, data = "";
            for (const line of block.split("\n")) {
              if (line.startsWith("id:")) evId = parseInt(line.slice(3).trim(), 10);
              else if (line.startsWith("data:")) data += line.slice(5).trimStart();
            }
            if (evId !== null && data) {
              state.lastId = evId;
              const ev = JSON.parse(data);
              events.append(el("li", { "data-type": ev.type }, el("code", {}, ev.type), " ", summary(ev)));
              scheduleRefresh();
            }
          }
        }
        // The stream ends when the run stops; it goes on only if the run is resumed.
        await refresh();
        if (!state.run || !["queued", "running", "crashed"].includes(state.run.status)) return;
      }
    } finally {
      following = false;
    }
  }

  let timer = null;
  function scheduleRefresh() {
    if (timer) return;
    timer = setTimeout(() => { timer = null; refresh(); }, 150);
  }

  await refresh();
  follow().catch((e) => { if (e instanceof NeedToken) askToken(main, () => location.reload()); });
}

function summary(ev) {
  switch (ev.type) {
    case "output": return ev.op + " " + JSON.stringify(ev.values);
    case "failure": return ev.op + ": " + ev.message;
    case "interrupt": return ev.id + ": " + JSON.stringify(ev.payload);
    case "stopped": return ev.reason;
    case "result": return JSON.stringify(ev.result);
    default: return JSON.stringify(ev);
  }
}

const main = document.getElementById("main");
const page = document.body.dataset.page;
guarded(main, () => (page === "run" ? runPage(main) : runsPage(main)))();
