// The NeuroInspect view: a class's mistakes, their counterfactual neurons (votes and
// importance), class-conditional visualisations, and a mitigation beside its control.
"use strict";

const Neuro = (() => {
  let catalog = null, ready = false, found = null;
  const $ = (id) => document.getElementById(id);

  function model() { return catalog.models.find((m) => m.name === $("n-model").value); }

  function fillModel() {
    const m = model(), layers = $("n-layer"), classes = $("n-class");
    layers.textContent = "";
    for (const name of m.layers) layers.append(el("option", { value: name, text: name }));
    classes.textContent = "";
    const count = m.classes ? m.classes.length : 10;
    for (let k = 0; k < count; k++) classes.append(el("option", { value: k, text: m.classes && m.classes[k] !== String(k) ? `${k} (${m.classes[k]})` : `${k}` }));
    const d = catalog.neuro;
    if (d.model === m.name) { layers.value = d.layer; classes.value = d.cls; }
    else layers.value = m.layers[m.layers.length - 3] || m.layers[0];
  }

  function chosen() {
    return Array.from(document.querySelectorAll("#n-neurons input:checked"), (box) => Number(box.value));
  }

  function common() {
    return { tab: TAB, model: $("n-model").value, layer: $("n-layer").value, cls: Number($("n-class").value) };
  }

  async function job(path, body, progress) {
    $("n-error").hidden = true;
    progress.textContent = "starting…";
    try {
      const started = await api(path, body);
      const snap = await pollJob(started.job, (s) => {
        progress.textContent = `${s.progress.phase} · ${(s.ms / 1000).toFixed(1)} s`;
      });
      progress.textContent = snap.state === "done" ? `done in ${(snap.ms / 1000).toFixed(1)} s` : snap.state;
      if (snap.state === "error") throw new ApiError(snap.error);
      return snap.state === "done" ? snap.result : null;
    } catch (e) {
      progress.textContent = "";
      $("n-error").textContent = e.message;
      $("n-error").hidden = false;
      return null;
    }
  }

  // The ranked neurons of both kinds; checkboxes choose those to visualise and edit.
  function votesTable(container, result, choose = false) {
    container.textContent = "";
    const table = el("table", { class: "votes" });
    table.append(el("tr", {}, ...["", "neuron", "kind", "votes (% of mistakes)", "importance"].map((t) => el("th", { text: t }))));
    for (const kind of ["insufficient", "excessive"]) {
      result.ranked[kind].forEach((row, i) => {
        const bar = el("span", { class: `bar ${kind}` });
        bar.style.width = `${Math.min(row.votes, 100)}%`;
        table.append(el("tr", {},
          el("td", {}, choose ? el("input", { type: "checkbox", value: row.neuron, checked: kind === "insufficient" && i < 3 ? "" : null }) : null),
          el("td", { text: row.neuron }), el("td", { text: kind }),
          el("td", { class: "votes-cell" }, bar, el("span", { text: fmt(row.votes) })),
          el("td", { text: row.importance === undefined ? "–" : fmt(row.importance) })));
      });
    }
    if (!result.ranked.insufficient.length && !result.ranked.excessive.length) {
      table.append(el("tr", {}, el("td", { colspan: 5, text: "no neuron got votes above the threshold" })));
    }
    container.append(table);
  }

  async function find() {
    const body = { ...common(), data: $("n-data").value, top: Number($("n-top").value) };
    const result = await job("/api/neuro/neurons", body, $("n-progress"));
    if (!result) return;
    found = result;
    $("n-query").textContent = result.query;
    $("n-count").textContent = `${result.mistakes} mistakes of class ${result.class_name ?? result.cls}, ${fmt(result.flipped_percent)}% flipped by their counterfactual`;
    const thumbs = $("n-mistakes");
    thumbs.textContent = "";
    for (const id of result.samples.slice(0, 48)) {
      thumbs.append(el("img", { class: "mini", src: `/api/data/${result.data}/${id}.png`, alt: `mistake ${id}`, title: `#${id}` }));
    }
    const holder = $("n-neurons");
    votesTable(holder, result, true);
  }

  async function visualize() {
    const neurons = chosen();
    if (!neurons.length) return alert("Choose neurons in the table first.");
    const body = { ...common(), data: $("n-data").value, neurons: neurons.slice(0, 6),
                   steps: Number($("n-steps").value), images: Number($("n-images").value),
                   conditioned: $("n-conditioned").checked };
    const result = await job("/api/neuro/visualize", body, $("n-vis-progress"));
    if (!result) return;
    const box = $("n-vis");
    box.textContent = "";
    box.append(el("p", { class: "mono muted", text: result.call }));
    for (const neuron of result.neurons) {
      const row = el("div", { class: "vis-row" }, el("span", { class: "row-label", text: `neuron ${neuron}` }));
      for (const c of result.cells.filter((cell) => cell.neuron === neuron)) {
        row.append(el("figure", {}, el("img", { src: c.png, alt: `neuron ${neuron} image ${c.image}` }),
          el("figcaption", { class: "muted", text: `activation ${fmt(c.activation)}` })));
      }
      box.append(row);
    }
  }

  async function mitigate() {
    const neurons = chosen();
    if (!neurons.length) return alert("Choose neurons in the table first.");
    const body = { ...common(), neurons, train: $("n-train").value, val: $("n-val").value,
                   test: $("n-test").value, epochs: Number($("n-epochs").value) };
    const result = await job("/api/neuro/mitigate", body, $("n-mit-progress"));
    if (!result) return;
    $("n-call").textContent = result.call;
    const table = $("n-report");
    table.textContent = "";
    const heads = ["version", "overall", "worst class", `class ${result.cls}`];
    if (result.groups) heads.push("worst group");
    table.append(el("tr", {}, ...heads.map((t) => el("th", { text: t }))));
    const before = result.rows[0];
    for (const row of result.rows) {
      const cells = [row.overall, row.worst_class, row.cls];
      if (result.groups) cells.push(row.worst_group);
      const keys = ["overall", "worst_class", "cls", "worst_group"];
      table.append(el("tr", {}, el("td", { text: row.version === "after" ? "after (edited)" : row.version }),
        ...cells.map((v, i) => {
          const change = row.version === "before" ? "" : ` (${v >= before[keys[i]] ? "+" : ""}${(100 * (v - before[keys[i]])).toFixed(1)})`;
          return el("td", { text: `${(100 * v).toFixed(1)}%${change}` });
        })));
    }
  }

  function init(cat) {
    if (ready) return;
    ready = true;
    catalog = cat;
    for (const m of cat.models) $("n-model").append(el("option", { value: m.name, text: m.name }));
    for (const id of ["n-data", "n-train", "n-val", "n-test"]) {
      for (const d of cat.data) $(id).append(el("option", { value: d.name, text: d.name }));
    }
    const d = cat.neuro;
    if (d.model) $("n-model").value = d.model;
    for (const [id, role] of [["n-data", "audit"], ["n-train", "train"], ["n-val", "val"], ["n-test", "test"]]) {
      if (d[role]) $(id).value = d[role];
    }
    fillModel();
    $("n-model").addEventListener("change", fillModel);
    $("n-find").addEventListener("click", find);
    $("n-visualize").addEventListener("click", visualize);
    $("n-mitigate").addEventListener("click", mitigate);
  }

  return { init, votesTable };
})();
