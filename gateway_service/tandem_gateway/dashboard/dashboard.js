// Tandem dashboard: renders the gateway's state, pushed as server-sent events.
"use strict";

(function () {
  const GIB = 1024 ** 3;
  const KEPT_S = 365 * 24 * 3600; // keep_alive -1: Ollama reports an expiry centuries away
  let lastState = null;
  const knownNames = new Map(); // node id -> name it last reported (kept while unreachable)

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined) node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function gib(bytes) {
    return `${(bytes / GIB).toFixed(1)} GiB`;
  }

  function clock(iso) {
    return iso ? new Date(iso).toLocaleTimeString() : "–";
  }

  function countdown(iso) {
    const left = iso ? Math.round((new Date(iso).getTime() - Date.now()) / 1000) : Infinity;
    if (left > KEPT_S) return "kept resident";
    if (left <= 0) return "expiring";
    const h = Math.floor(left / 3600);
    const m = Math.floor((left % 3600) / 60);
    const s = left % 60;
    return `unloads in ${h ? `${h}h ` : ""}${h || m ? `${m}m ` : ""}${s}s`;
  }

  function modelList(node) {
    const list = el("ul", { class: "models" });
    const loaded = node.loaded_models || [];
    for (const model of loaded) {
      const share = model.size_bytes ? Math.floor((100 * model.vram_bytes) / model.size_bytes) : 0;
      const where = model.on_gpu ? "fully on GPU" : (share ? `GPU ${share}%, rest on CPU` : "on CPU");
      const gpu = model.size_bytes
        ? el("span", { class: "gpu", "data-on-gpu": String(model.on_gpu) }, where)
        : null;
      list.append(el("li", { class: "model", "data-model": model.name }, model.name, " · ",
        el("span", { class: "countdown", "data-expires": model.expires_at || "" }, countdown(model.expires_at)),
        gpu));
    }
    if (!loaded.length && !node.model) list.append(el("li", null, "none (no judge model)"));
    if (!loaded.length && node.model) {
      const expiry = node.model_state === "loaded"
        ? el("span", { class: "countdown", "data-expires": node.model_expires_at || "" }, countdown(node.model_expires_at))
        : null;
      list.append(el("li", { class: "model", "data-model": node.model },
        `${node.model} (${node.model_state})`, expiry ? " · " : null, expiry));
    }
    return list;
  }

  function memory(node) {
    const mem = node.memory;
    if (!mem) return "–";
    const share = Math.min(100, Math.round((100 * mem.used_bytes) / mem.total_bytes));
    const words = `${gib(mem.used_bytes)} used of ${gib(mem.total_bytes)}`
      + (mem.pressure ? ` · pressure ${mem.pressure}` : "")
      + (mem.swap_used_bytes ? ` · swap ${gib(mem.swap_used_bytes)}` : "");
    const bar = el("div", { class: "meter", "data-pressure": mem.pressure || "" },
      el("span", { style: null }));
    bar.firstChild.style.width = `${share}%`;
    return el("div", null, words, bar);
  }

  function nodeCard(row) {
    const node = row.node;
    const facts = el("dl");
    const fact = (term, value) => facts.append(el("dt", null, term), el("dd", null, value));
    if (row.role === "worker") fact("address", row.id);
    if (node) {
      const backend = node.backend === "unspecified" ? "none" : node.backend;
      fact("backend", `${backend}${node.version ? ` ${node.version}` : ""}`);
      fact("models", modelList(node));
      fact("memory", memory(node));
      fact("generations", `${node.running} running · ${node.queued} queued`);
    } else {
      fact("node", "no report while unreachable");
    }
    if (row.link) {
      const rtt = row.link.rtt_ms === null ? "–" : `${row.link.rtt_ms.toFixed(2)} ms`;
      fact("link", `rtt ${rtt} · ${row.link.consecutive_failures} failures · last seen ${clock(row.link.last_seen)}`);
    }
    if (row.error) facts.append(el("dt", null, "error"), el("dd", { class: "error" }, row.error));
    for (const warning of (node && node.warnings) || []) {
      facts.append(el("dt", null, "warning"), el("dd", { class: "error" }, warning));
    }
    if (node && node.name) knownNames.set(row.id, node.name);
    const title = knownNames.get(row.id) || row.id;
    return el("article", { class: "node", "data-node": row.id, "data-role": row.role },
      el("header", null, el("h3", null, title), el("span", { class: "role" }, row.role),
        el("span", { class: `state state-${row.state}` }, row.state)),
      facts);
  }

  function renderNodes(state) {
    document.getElementById("nodes").replaceChildren(...state.nodes.map(nodeCard));
  }

  function renderHeader(state) {
    const badge = document.getElementById("readiness");
    badge.textContent = state.readiness;
    badge.dataset.ready = String(state.ready);
    document.getElementById("observed").textContent = `at ${clock(state.observed_at)}`;
    document.getElementById("warnings").replaceChildren(
      ...state.warnings.map((w) => el("li", null, w)));
  }

  function renderCharts(state) {
    const windowMs = state.window_s * 1000;
    const windowEnd = new Date(state.observed_at).getTime();
    const links = document.getElementById("link-charts");
    const figures = Object.entries(state.links).map(([address, ring]) => {
      const figure = el("figure", { class: "chart", "data-link": address });
      TandemCharts.line(figure, {
        title: `${address} round trip`, unit: "ms", times: ring.t,
        series: [{ name: "rtt", values: ring.rtt_ms }], windowMs, windowEnd,
      });
      return figure;
    });
    links.replaceChildren(...figures);
    const traffic = state.traffic;
    const draw = (id, title, unit, series) => TandemCharts.line(document.getElementById(id), {
      title, unit, times: traffic.t, series, windowMs, windowEnd,
    });
    draw("chart-requests", "Requests by verdict / tier", "per min",
      Object.entries(traffic.requests_per_min).map(([name, values]) => ({ name, values })));
    draw("chart-guard", "Guard latency", "ms", [
      { name: "mean", values: traffic.guard_ms.mean }, { name: "p95 ≤", values: traffic.guard_ms.p95 }]);
    draw("chart-tokens", "Tokens relayed", "tokens/s", [{ name: "tokens/s", values: traffic.tokens_per_s }]);
    draw("chart-ttft", "Time to first token", "ms", [
      { name: "mean", values: traffic.ttft_ms.mean }, { name: "p95 ≤", values: traffic.ttft_ms.p95 }]);
  }

  function renderRefusals(state) {
    const rows = state.refusals.map((r) => el("tr", { class: "refusal" },
      el("td", null, clock(r.at)),
      el("td", null, r.categories.length ? r.categories.join(", ") : "–"),
      el("td", null, r.tier),
      el("td", { class: "reason" }, r.reason)));
    document.querySelector("#refusals tbody").replaceChildren(...rows);
    document.getElementById("refusals").hidden = rows.length === 0;
    document.getElementById("no-refusals").hidden = rows.length > 0;
  }

  function render(state) {
    lastState = state;
    renderHeader(state);
    renderNodes(state);
    renderCharts(state);
    renderRefusals(state);
  }

  function tick() {
    for (const span of document.querySelectorAll(".countdown[data-expires]")) {
      if (span.dataset.expires) span.textContent = countdown(span.dataset.expires);
    }
  }

  function connect() {
    const status = document.getElementById("connection");
    const events = new EventSource("/dashboard/events");
    events.addEventListener("state", (event) => {
      status.textContent = "live";
      status.dataset.live = "true";
      render(JSON.parse(event.data));
    });
    events.addEventListener("error", () => {
      status.textContent = lastState ? "reconnecting… (showing the last state)" : "connecting…";
      status.dataset.live = "false";
    });
  }

  connect();
  setInterval(tick, 1000);
})();
