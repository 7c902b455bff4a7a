// The query view: pickers, the sample browser, running queries, drill-down and comparison.
"use strict";

const state = {
  catalog: null, offset: 0, limit: 40, slot: "x", running: null,
  picks: { x: { data: null, ids: [] }, "x'": { data: null, ids: [] } },
};
const $ = (id) => document.getElementById(id);

function modelsBound() {
  const models = { f: $("model").value };
  if ($("model2").value) models.g = $("model2").value;
  return models;
}

function inputsBound() {
  const inputs = {};
  for (const name of ["x", "x'"]) {
    const pick = state.picks[name];
    if (pick.ids.length) inputs[name] = { data: pick.data, ids: pick.ids };
  }
  return inputs;
}

function showPicks() {
  for (const [name, id] of [["x", "pick-x"], ["x'", "pick-x2"]]) {
    const pick = state.picks[name];
    $(id).textContent = pick.ids.length ? `${pick.data} #${pick.ids.join(", #")}` : "none";
  }
  const second = state.picks["x'"].ids.length ? "x′" : $("model2").value ? `g = ${$("model2").value}` : null;
  $("compare").hidden = !second;
  $("compare-what").textContent = second ? `compare with ${second}:` : "";
  for (const node of document.querySelectorAll(".thumb")) {
    const id = Number(node.dataset.id), data = $("data").value;
    node.classList.toggle("picked-x", state.picks.x.data === data && state.picks.x.ids.includes(id));
    node.classList.toggle("picked-x2", state.picks["x'"].data === data && state.picks["x'"].ids.includes(id));
  }
}

function pick(id, add) {
  const slot = state.picks[state.slot], data = $("data").value;
  if (slot.data !== data || !add) { slot.data = data; slot.ids = [id]; }
  else if (slot.ids.includes(id)) slot.ids = slot.ids.filter((i) => i !== id);
  else if (slot.ids.length < state.catalog.limits.samples) slot.ids.push(id);
  showPicks();
}

async function loadSamples() {
  const body = { data: $("data").value, model: $("model").value, offset: state.offset, limit: state.limit };
  if ($("filter").checked) body.query = Editor.text;
  let page;
  try {
    page = await api("/api/samples", body);
  } catch (e) {
    $("sample-count").textContent = e.message;
    return;
  }
  const thumbs = $("thumbs");
  thumbs.textContent = "";
  for (const item of page.items) {
    const badge = item.label === null ? `pred ${item.pred}` : `${item.label} → ${item.pred}`;
    const node = el("button", {
      class: `thumb ${item.correct === false ? "wrong" : ""}`, "data-id": item.id,
      title: `#${item.id}: label ${item.label_name ?? item.label ?? "?"}, predicted ${item.pred_name ?? item.pred}`,
      onclick: (event) => pick(item.id, event.shiftKey || event.ctrlKey || event.metaKey),
    });
    if (page.images) node.append(el("img", { src: `/api/data/${page.data}/${item.id}.png`, alt: `sample ${item.id}` }));
    node.append(el("span", { class: "badge", text: badge }));
    thumbs.append(node);
  }
  const filtered = page.where ? ` where ${page.where}` : "";
  $("sample-count").textContent = `${page.matched} of ${page.total} samples${filtered} (shift-click adds)`;
  $("page").textContent = `${page.matched ? state.offset + 1 : 0}–${state.offset + page.items.length}`;
  $("prev").disabled = state.offset === 0;
  $("next").disabled = state.offset + page.items.length >= page.matched;
  showPicks();
}

function setBusy(busy) {
  $("run").disabled = busy;
  $("cancel").disabled = !busy;
  $("progress-bar").hidden = !busy;
}

async function run() {
  Editor.showError(null);
  setBusy(true);
  $("progress").textContent = "starting…";
  try {
    const started = await api("/api/query", { tab: TAB, query: Editor.text, models: modelsBound(), inputs: inputsBound() });
    state.running = started.job;
    const snap = await pollJob(started.job, (s) => {
      const p = s.progress;
      $("progress").textContent = `${p.phase} ${p.total ? `${p.done}/${p.total}` : ""} · ${Math.round(s.ms)} ms`;
      $("progress-bar").value = p.total ? p.done / p.total : 0;
    });
    if (snap.state === "done") shown(snap);
    else if (snap.state === "cancelled") $("progress").textContent = `cancelled after ${Math.round(snap.ms)} ms`;
    else Editor.showError(snap.error);
  } catch (e) {
    Editor.showError(e.payload || { message: String(e) });
    $("progress").textContent = "";
  } finally {
    state.running = null;
    setBusy(false);
    loadHistory();
    if ($("filter").checked) loadSamples();
  }
}

function shown(snap) {
  const result = snap.result, stats = result.stats;
  $("plan").textContent = result.plan;
  const memo = stats.misses === 0 ? "all from the memo" : `${stats.hits} from the memo, ${stats.misses} computed`;
  $("progress").textContent = `done in ${Math.round(snap.ms)} ms (compute ${Math.round(stats.compute_ms)} ms; ${memo})`;
  $("neuron-votes").hidden = !result.neurons;
  if (result.neurons) {
    Results.clear();
    $("result-head").hidden = true;
    Neuro.votesTable($("neuron-votes"), result.neurons);
    return;
  }
  $("result-head").hidden = false;
  $("figure").href = `/api/figure/${TAB}/${snap.id}.png`;
  Results.show(result);
}

async function loadHistory() {
  const data = await api(`/api/history/${TAB}`);
  const list = $("history");
  list.textContent = "";
  for (const entry of data.history) {
    const memo = entry.kind === "query" && entry.hits !== undefined ? ` · ${entry.hits} hit${entry.hits === 1 ? "" : "s"}, ${entry.misses} computed` : "";
    list.append(el("li", { class: entry.state, title: "click to put it back in the editor",
      onclick: () => { if (entry.kind === "query") Editor.text = entry.text; } },
      el("code", { text: entry.text }), el("div", { class: "muted", text: `${entry.state} · ${Math.round(entry.ms)} ms${memo}` })));
  }
  const m = data.memo;
  $("memo").textContent = `memo: ${m.results} results, ${(m.bytes / 2 ** 20).toFixed(1)} MiB · ${m.hits} hits, ${m.misses} misses`;
}

async function rewrite(change) {
  try {
    const answer = await api("/api/rewrite", { query: Editor.text, ...change });
    Editor.text = answer.query;
    await run();
  } catch (e) {
    Editor.showError(e.payload || { message: String(e) });
  }
}

function setLayer(layer) {
  const text = Editor.text.replace(/^(\s*select\s+)(neurons\s+of\s+)?('(?:\\.|[^'\\])*'|"(?:\\.|[^"\\])*"|[^\s]+)/i,
    (_, head, neurons, old) => head + (neurons || "") + (layer === "*" && !neurons ? "*" : layer));
  Editor.text = text;
}

function fillModels() {
  const catalog = state.catalog;
  const layers = $("layer"), model = catalog.models.find((m) => m.name === $("model").value);
  layers.textContent = "";
  layers.append(el("option", { value: "*", text: "* (the input)" }));
  for (const name of model.layers) layers.append(el("option", { value: name, text: name }));
}

async function init() {
  const catalog = state.catalog = await api("/api/catalog");
  for (const m of catalog.models) {
    $("model").append(el("option", { value: m.name, text: m.name }));
    $("model2").append(el("option", { value: m.name, text: m.name }));
  }
  for (const d of catalog.data) $("data").append(el("option", { value: d.name, text: `${d.name} (${d.size})` }));
  $("model").value = catalog.defaults.model;
  $("data").value = catalog.defaults.data;
  fillModels();
  const note = () => { $("data-note").textContent = catalog.data.find((d) => d.name === $("data").value).note; };
  note();
  Editor.onBindings(() => ({ models: modelsBound(), inputs: Object.keys(inputsBound()) }));
  Editor.onChange((parsed) => { // the layer picker follows the query's select
    if (!parsed.ok || parsed.neurons) return;
    const layer = parsed.layer ?? "*";
    if ([...$("layer").options].some((o) => o.value === layer)) $("layer").value = layer;
  });
  Editor.text = catalog.defaults.query;
  state.picks.x = { data: catalog.defaults.data, ids: [0] };
  $("model").addEventListener("change", () => { fillModels(); loadSamples(); });
  $("model2").addEventListener("change", showPicks);
  $("layer").addEventListener("change", () => setLayer($("layer").value));
  $("data").addEventListener("change", () => { state.offset = 0; note(); loadSamples(); });
  $("filter").addEventListener("change", () => { state.offset = 0; loadSamples(); });
  $("prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - state.limit); loadSamples(); });
  $("next").addEventListener("click", () => { state.offset += state.limit; loadSamples(); });
  $("clear-picks").addEventListener("click", () => { state.picks[state.slot] = { data: null, ids: [] }; showPicks(); });
  for (const radio of document.querySelectorAll("input[name=slot]")) radio.addEventListener("change", () => { state.slot = radio.value; });
  $("run").addEventListener("click", run);
  $("cancel").addEventListener("click", () => state.running && api("/api/cancel", { tab: TAB, job: state.running }));
  $("query").addEventListener("keydown", (event) => { if (event.key === "Enter" && event.ctrlKey) { event.preventDefault(); run(); } });
  $("opacity").addEventListener("input", () => Results.setOpacity($("opacity").value / 100));
  $("zoom").addEventListener("change", () => Results.redraw());
  const compareWith = (how) => state.picks["x'"].ids.length ? { compare: how, inputs: "x'" } : { compare: how, model: "g" };
  $("do-join").addEventListener("click", () => rewrite(compareWith("join")));
  $("do-anti").addEventListener("click", () => rewrite(compareWith("anti")));
  Results.onWindow((window_) => rewrite({ window: window_ }));
  for (const tab of document.querySelectorAll(".view-tab")) {
    tab.addEventListener("click", () => {
      for (const other of document.querySelectorAll(".view-tab")) other.classList.toggle("active", other === tab);
      $("view-queries").hidden = tab.dataset.view !== "queries";
      $("view-neuro").hidden = tab.dataset.view !== "neuro";
      if (tab.dataset.view === "neuro") Neuro.init(catalog);
    });
  }
  await loadSamples();
  await loadHistory();
  run();
}

init();
