// The search playground: plain JavaScript over the service's REST API (same origin, relative URLs).
// Every string from the service or the user goes into the page as text (textContent, text nodes,
// new Option), never as markup. The API key lives in this tab only (a variable and sessionStorage):
// it is sent in the X-API-Key header, never put in a URL and never logged.
"use strict";

(() => {
  const KEY_STORAGE = "router-retriever-playground-api-key";
  const TIMEOUT_MS = 60000;
  const READY_RETRIES = 60;
  const SNIPPET_CHARS = 320;
  const STOPWORDS = new Set(("a about after all also an and any are as at be been before between but by can did do " +
    "does for from has have how i if in into is it its no not of on or our so such than that the their them then " +
    "there these they this those to was we were what when where which who why with you your").split(" "));

  const $ = (id) => document.getElementById(id);
  const el = (tag, className, text) => {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  };

  const state = {
    apiKey: readStoredKey(),
    experts: [],
    routed: true,
    modes: null,
    limits: { topK: null, topKMin: 1, queryChars: null },
    searchSeq: 0,
  };

  class ApiError extends Error {
    constructor(status, detail, kind, problems) {
      super(detail);
      this.status = status;
      this.kind = kind || "";
      this.problems = problems || [];
    }
  }

  function readStoredKey() {
    try { return sessionStorage.getItem(KEY_STORAGE) || ""; } catch { return ""; }
  }

  function storeKey(key) {
    state.apiKey = key;
    try {
      if (key) sessionStorage.setItem(KEY_STORAGE, key); else sessionStorage.removeItem(KEY_STORAGE);
    } catch { /* storage disabled: the key stays in this page's memory only */ }
  }

  // ---- REST calls ----------------------------------------------------------------------------------
  async function api(path, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (state.apiKey) headers["X-API-Key"] = state.apiKey;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), TIMEOUT_MS);
    let response;
    try {
      response = await fetch(path, {
        method: body === undefined ? "GET" : "POST",
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: controller.signal,
        cache: "no-store",
        credentials: "same-origin",
        referrerPolicy: "no-referrer",
      });
    } catch (err) {
      const why = err && err.name === "AbortError" ? `no answer within ${TIMEOUT_MS / 1000} s` : "the service cannot be reached";
      throw new ApiError(0, why, "NetworkError");
    } finally {
      clearTimeout(timer);
    }
    let payload = null;
    try { payload = await response.json(); } catch { payload = null; }
    if (!response.ok) {
      const detail = payload && typeof payload.detail === "string" ? payload.detail
        : `${response.status} ${response.statusText || "error"}`;
      const problems = payload && Array.isArray(payload.errors) ? payload.errors : [];
      throw new ApiError(response.status, detail, payload && payload.error, problems);
    }
    if (payload === null) throw new ApiError(response.status, "the service answered something other than JSON", "BadResponse");
    return payload;
  }

  // ---- status line and errors ----------------------------------------------------------------------
  function setStatus(text) { $("status").textContent = text; }

  function clearError() {
    const box = $("error");
    box.replaceChildren();
    box.hidden = true;
  }

  function showError(err, context) {
    const box = $("error");
    box.replaceChildren();
    const head = el("strong", null, err.status ? `${context}: ${err.status}${err.kind ? " " + err.kind : ""}` : `${context}`);
    box.append(head, el("span", "error-detail", " — " + err.message));
    if (err.problems && err.problems.length) {
      const list = el("ul");
      for (const p of err.problems) {
        const where = Array.isArray(p.loc) ? p.loc.filter((part) => part !== "body").join(".") : "";
        list.append(el("li", null, `${where ? where + ": " : ""}${p.msg || ""}`));
      }
      box.append(list);
    }
    box.hidden = false;
    if (err.status === 401) askForKey();
  }

  function askForKey() {
    $("key-row").hidden = false;
    $("api-key").focus();
  }

  // ---- limits from the OpenAPI schema ------------------------------------------------------------
  function resolveRef(schema, node) {
    let current = node;
    for (let i = 0; current && current.$ref && i < 8; i++) {
      const path = current.$ref.replace(/^#\//, "").split("/");
      current = path.reduce((obj, part) => (obj ? obj[part] : undefined), schema);
    }
    return current;
  }

  function numberIn(schema, node, key) {
    const resolved = resolveRef(schema, node);
    if (!resolved) return null;
    if (typeof resolved[key] === "number") return resolved[key];
    for (const alternative of [...(resolved.anyOf || []), ...(resolved.allOf || [])]) {
      const found = numberIn(schema, alternative, key);
      if (found !== null) return found;
    }
    return null;
  }

  async function loadLimits() {
    try {
      const schema = await api("openapi.json");
      const post = schema.paths && schema.paths["/search"] && schema.paths["/search"].post;
      const bodyRef = post && post.requestBody && post.requestBody.content && post.requestBody.content["application/json"];
      const request = resolveRef(schema, bodyRef ? bodyRef.schema : { $ref: "#/components/schemas/SearchRequest" });
      const props = (request && request.properties) || {};
      state.limits.topK = numberIn(schema, props.top_k, "maximum");
      state.limits.topKMin = numberIn(schema, props.top_k, "minimum") || 1;
      state.limits.queryChars = numberIn(schema, props.query, "maxLength");
    } catch {
      // No schema (disabled or unreachable): the service's own 4xx answers still tell the limits.
    }
    applyLimits();
  }

  function applyLimits() {
    const topK = $("top-k");
    topK.min = String(state.limits.topKMin);
    if (state.limits.topK) topK.max = String(state.limits.topK);
    if (state.limits.queryChars) $("query").maxLength = state.limits.queryChars;
    const notes = [];
    if (state.limits.topK) notes.push(`top-k ≤ ${state.limits.topK}`);
    if (state.experts.length) notes.push(`top-m ≤ ${state.experts.length}`);
    if (state.limits.queryChars) notes.push(`query ≤ ${state.limits.queryChars} characters`);
    $("limits").textContent = notes.length ? `limits: ${notes.join(" · ")}` : "";
  }

  // ---- experts -----------------------------------------------------------------------------------
  async function loadExperts(attempt = 0) {
    let body;
    try {
      body = await api("experts");
    } catch (err) {
      if (err.status === 503 && attempt < READY_RETRIES) {
        setStatus(`The service is not ready yet (${err.message}); retrying…`);
        setTimeout(() => loadExperts(attempt + 1), 2000);
        return;
      }
      setStatus(err.status === 401 ? "This service needs an API key." : "Could not load the experts.");
      showError(err, "Loading the experts");
      return;
    }
    clearError();
    renderExperts(body);
    loadReadiness();
  }

  async function loadReadiness() {
    const base = `${state.experts.length} expert${state.experts.length === 1 ? "" : "s"} · ` +
      (state.routed ? "routed by pilot queries" : "no router: one expert, or name one");
    try {
      const ready = await api("ready");
      setStatus(`Ready · ${ready.documents} documents · ${base}`);
    } catch (err) {
      setStatus(`Not ready: ${err.message} · ${base}`);
    }
  }

  function renderExperts(body) {
    state.experts = Array.isArray(body.experts) ? body.experts : [];
    state.routed = body.routed !== false;
    const select = $("expert");
    const chosen = select.value;
    select.replaceChildren(new Option(state.routed ? "route automatically" : "(the only expert)", ""));
    for (const e of state.experts) select.append(new Option(e.name, e.name));
    if (state.experts.some((e) => e.name === chosen)) select.value = chosen;

    const topM = $("top-m");
    topM.max = String(Math.max(1, state.experts.length));
    if (Number.isInteger(body.default_route_top_m)) topM.value = String(body.default_route_top_m);
    updateTopM();

    const modes = Array.isArray(body.modes) && body.modes.length ? body.modes.map(String) : null;
    state.modes = modes;
    const modeSelect = $("mode");
    modeSelect.replaceChildren(...(modes || []).map((m) => new Option(m, m)));
    if (modes) modeSelect.value = modes.includes(body.default_mode) ? body.default_mode : modes[0];
    $("mode-label").hidden = !modes;

    const rows = $("experts").tBodies[0];
    rows.replaceChildren();
    for (const e of state.experts) {
      const row = el("tr");
      row.dataset.expert = e.name;
      const domains = Array.isArray(e.domains) && e.domains.length ? e.domains.join(", ") : "—";
      const cells = [[e.name, "name"], [e.description || "—"], [e.query_encoder, "mono"], [e.document_encoder, "mono"],
        [e.dimension, "num"], [e.index_documents, "num"], [e.index_kind || "—"], [domains]];
      for (const [text, cls] of cells) row.append(el("td", cls, text));
      rows.append(row);
    }
    applyLimits();
  }

  function expertInfo(name) {
    return state.experts.find((e) => e.name === name);
  }

  function updateTopM() {
    const forced = $("expert").value !== "";
    const topM = $("top-m");
    topM.disabled = forced || !state.routed || state.experts.length < 2;
    $("top-m-label").title = forced ? "a forced expert is searched alone" : "search the m best-routed experts and fuse them";
  }

  // ---- search ------------------------------------------------------------------------------------
  function intIn(input, label, min, max) {
    const raw = input.value.trim();
    if (!/^\d+$/.test(raw)) throw new ApiError(0, `${label} must be a whole number`, "InvalidInput");
    const value = Number(raw);
    if (value < min || (max && value > max)) {
      throw new ApiError(0, `${label} must be between ${min} and ${max} (got ${value})`, "InvalidInput");
    }
    return value;
  }

  function buildRequest() {
    const query = $("query").value;
    if (!query.trim()) throw new ApiError(0, "type a query first", "InvalidInput");
    if (state.limits.queryChars && query.length > state.limits.queryChars) {
      throw new ApiError(0, `the query is longer than ${state.limits.queryChars} characters`, "InvalidInput");
    }
    const request = { query, top_k: intIn($("top-k"), "top-k", state.limits.topKMin, state.limits.topK) };
    const expert = $("expert").value;
    if (expert) request.expert = expert;
    else if (!$("top-m").disabled) request.route_top_m = intIn($("top-m"), "top-m", 1, state.experts.length || null);
    if (state.modes) request.mode = $("mode").value;
    return request;
  }

  async function search(event) {
    event.preventDefault();
    applyKeyFromInput(false);
    clearError();
    let request;
    try {
      request = buildRequest();
    } catch (err) {
      showError(err, "Check the form");
      return;
    }
    const seq = ++state.searchSeq;
    const button = $("search-button");
    button.disabled = true;
    document.body.classList.add("busy");
    const started = performance.now();
    try {
      const body = await api("search", request);
      if (seq !== state.searchSeq) return;
      renderRoute(body.route);
      renderHits(body, request, performance.now() - started);
    } catch (err) {
      if (seq === state.searchSeq) showError(err, "Search failed");
    } finally {
      if (seq === state.searchSeq) {
        button.disabled = false;
        document.body.classList.remove("busy");
      }
    }
  }

  // ---- route -------------------------------------------------------------------------------------
  function ordinal(n) {
    return n === 1 ? "1st" : n === 2 ? "2nd" : n === 3 ? "3rd" : `${n}th`;
  }

  function renderRoute(route) {
    const chosen = Array.isArray(route.experts) ? route.experts : [route.expert];
    const scores = route.scores || {};
    const names = [...new Set([...state.experts.map((e) => e.name), ...Object.keys(scores), ...chosen])];
    names.sort((a, b) => (scores[b] ?? -Infinity) - (scores[a] ?? -Infinity));
    const values = Object.values(scores).filter((v) => typeof v === "number");
    const low = Math.min(0, ...values);
    const high = Math.max(1e-9, ...values);

    const summary = $("route-summary");
    summary.replaceChildren();
    if (route.forced) {
      summary.append("Forced to ", el("strong", "expert-name", route.expert), ": the router was not consulted.");
    } else {
      summary.append("Routed to ");
      chosen.forEach((name, i) => {
        if (i) summary.append(" + ");
        summary.append(el("strong", "expert-name", name));
      });
      if (chosen.length > 1) summary.append(" (top-m: their hit lists fused by reciprocal rank)");
      summary.append(".");
    }

    const bars = $("route-bars");
    bars.replaceChildren();
    for (const name of names) {
      const score = scores[name];
      const rank = chosen.indexOf(name) + 1;
      const row = el("div", "bar-row" + (rank ? " chosen" : ""));
      row.dataset.expert = name;
      if (typeof score === "number") row.dataset.score = String(score);
      const label = el("div", "bar-label");
      label.append(el("span", "expert-name", name));
      if (rank) label.append(el("span", "badge", route.forced ? "forced" : `${ordinal(rank)} choice`));
      const track = el("div", "bar-track");
      const fill = el("div", "bar-fill");
      fill.style.width = typeof score === "number" ? `${(100 * (score - low)) / (high - low)}%` : "0%";
      track.append(fill);
      const value = el("div", "bar-value", typeof score === "number" ? score.toFixed(3) : "—");
      const info = expertInfo(name);
      const why = el("div", "bar-why muted",
        info && Array.isArray(info.domains) && info.domains.length ? `pilots: ${info.domains.join(", ")}` : "");
      row.append(label, track, value, why);
      bars.append(row);
    }

    $("route-why").textContent = routeReason(route, chosen, scores);
    $("route-panel").hidden = false;
  }

  function routeReason(route, chosen, scores) {
    if (route.forced) return "You named the expert, so no router scores were computed.";
    const scored = Object.entries(scores).filter(([, v]) => typeof v === "number");
    if (!scored.length) return "";
    const best = chosen[0];
    const info = expertInfo(best);
    const domains = info && Array.isArray(info.domains) && info.domains.length ? ` (pilot domains: ${info.domains.join(", ")})` : "";
    const others = scored.filter(([name]) => !chosen.includes(name)).sort((a, b) => b[1] - a[1]);
    let text = `Each score is the query's similarity to that expert's pilot queries. ${best}${domains} scored ` +
      `${Number(scores[best]).toFixed(3)}`;
    for (const name of chosen.slice(1)) {
      if (typeof scores[name] === "number") text += `, ${name} ${Number(scores[name]).toFixed(3)}`;
    }
    if (others.length) {
      const last = chosen[chosen.length - 1];
      text += `, ${(scores[last] - others[0][1]).toFixed(3)} above the next expert, ${others[0][0]}`;
    }
    return text + ".";
  }

  // ---- hits --------------------------------------------------------------------------------------
  function queryTerms(query) {
    const words = query.toLowerCase().match(/[\p{L}\p{N}]+/gu) || [];
    const terms = new Set();
    for (const w of words) {
      if (w.length < 2 || STOPWORDS.has(w)) continue;
      terms.add(w.length > 4 && w.endsWith("s") ? w.slice(0, -1) : w);
    }
    return [...terms].sort((a, b) => b.length - a.length);
  }

  function termPattern(terms) {
    if (!terms.length) return null;
    const escaped = terms.map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
    return new RegExp(`(?<![\\p{L}\\p{N}])(?:${escaped.join("|")})[\\p{L}\\p{N}]*`, "giu");
  }

  function appendHighlighted(parent, text, pattern) {
    if (!pattern) {
      parent.append(text);
      return;
    }
    let last = 0;
    for (const match of text.matchAll(pattern)) {
      parent.append(text.slice(last, match.index), el("mark", null, match[0]));
      last = match.index + match[0].length;
    }
    parent.append(text.slice(last));
  }

  function snippetOf(text, pattern) {
    if (!text) return "";
    if (text.length <= SNIPPET_CHARS) return text;
    let start = 0;
    if (pattern) {
      pattern.lastIndex = 0;
      const first = text.search(pattern);
      if (first > SNIPPET_CHARS / 3) start = text.lastIndexOf(" ", first - 60) + 1;
    }
    let end = Math.min(text.length, start + SNIPPET_CHARS);
    const space = text.lastIndexOf(" ", end);
    if (end < text.length && space > start + SNIPPET_CHARS / 2) end = space;
    return (start > 0 ? "… " : "") + text.slice(start, end).trim() + (end < text.length ? " …" : "");
  }

  // Per-hit provenance: the retrievers that found the hit and their ranks when the service says so,
  // else the expert whose index produced it, at the hit's rank in this list.
  function provenanceOf(hit, rank) {
    if (Array.isArray(hit.provenance) && hit.provenance.length) {
      return hit.provenance.map((p) => ({ retriever: String(p.retriever), rank: p.rank,
        note: `found by ${p.retriever} at rank ${p.rank}` }));
    }
    return [{ retriever: hit.expert, rank, note: `from the index of expert ${hit.expert}; rank ${rank} in this list` }];
  }

  function renderHits(body, request, elapsed) {
    const pattern = termPattern(queryTerms(body.query || request.query));
    const list = $("hits");
    list.replaceChildren();
    body.hits.forEach((hit, i) => {
      const item = el("li", "hit");
      item.dataset.id = hit.id;
      const head = el("div", "hit-head");
      head.append(el("span", "hit-rank", `#${i + 1}`));
      const title = el("span", "hit-title");
      appendHighlighted(title, hit.title || hit.id, pattern);
      head.append(title, el("span", "hit-score", `score ${Number(hit.score).toFixed(4)}`));
      item.append(head);

      const snippet = el("p", "hit-snippet");
      appendHighlighted(snippet, snippetOf(hit.text || "", pattern), pattern);
      item.append(snippet);

      const prov = el("div", "hit-provenance");
      prov.append(el("span", "muted", `id ${hit.id} · found by `));
      for (const p of provenanceOf(hit, i + 1)) {
        const chip = el("span", "prov", `${p.retriever} · rank ${p.rank}`);
        chip.dataset.retriever = p.retriever;
        chip.dataset.rank = String(p.rank);
        chip.title = p.note;
        prov.append(chip);
      }
      item.append(prov);

      if (hit.metadata && Object.keys(hit.metadata).length) {
        const details = el("details", "hit-metadata");
        details.append(el("summary", null, "metadata"), el("pre", null, JSON.stringify(hit.metadata, null, 2)));
        item.append(details);
      }
      list.append(item);
    });
    const summary = $("hits-summary");
    summary.replaceChildren();
    summary.append(`${body.hits.length} hit${body.hits.length === 1 ? "" : "s"} for `, el("q", null, body.query),
      ` in ${Math.round(elapsed)} ms`);
    if (!body.hits.length) summary.append(" — nothing matched (check the filters, or the index is empty).");
    $("hits-panel").hidden = false;
  }

  // ---- API key -----------------------------------------------------------------------------------
  function applyKeyFromInput(reload) {
    const input = $("api-key");
    if ($("key-row").hidden || input.value === state.apiKey) return;
    storeKey(input.value.trim());
    if (reload) loadExperts();
  }

  function start() {
    $("search-form").addEventListener("submit", search);
    $("expert").addEventListener("change", updateTopM);
    $("key-apply").addEventListener("click", () => {
      clearError();
      const input = $("api-key");
      storeKey(input.value.trim());
      loadExperts();
    });
    $("api-key").addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        $("key-apply").click();
      }
    });
    if (state.apiKey) {
      $("key-row").hidden = false;
      $("api-key").value = state.apiKey;
    }
    loadLimits();
    loadExperts();
  }

  start();
})();
