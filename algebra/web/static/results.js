// A query's result: a grid of heat maps over their images (rows: samples, and the sides of
// an anti-join; columns: targets), one colour scale, and dragging on a map to drill down.
"use strict";

const Results = (() => {
  const grid = document.getElementById("grid");
  let SIZE = 150; // pixels of a panel's longer side (larger when there are few panels)
  let onWindow = () => {};

  function className(names, k) {
    return names && names[k] !== undefined && names[k] !== String(k) ? `${k} (${names[k]})` : `${k}`;
  }

  function rowLabel(panel) {
    const parts = [];
    if (panel.side) parts.push(panel.side === "left" ? "x" : "x′");
    parts.push(`#${panel.sample}`);
    if (panel.label !== null && panel.label !== undefined) parts.push(`label ${panel.label}`);
    if (panel.pred !== null && panel.pred !== undefined) parts.push(`pred ${panel.pred}`);
    const node = el("div", { class: "row-label" }, parts.join(" · "));
    if (panel.pred !== null && panel.label !== null && panel.pred !== undefined && panel.label !== undefined) {
      node.append(el("span", { class: panel.pred === panel.label ? "ok" : "bad", text: panel.pred === panel.label ? " ✓" : " ✗" }));
    }
    return node;
  }

  function colLabel(panel, hasTarget) {
    if (!hasTarget) return `class ${panel.class_name ?? panel.class ?? "–"}`;
    return `target ${panel.target}: class ${panel.class_name ?? panel.class}`;
  }

  // A panel: the image, the map over it, and a drag rectangle. Zoomed, the panel shows the
  // current window only (both images scaled and shifted); else the window is outlined.
  function cell(panel, info, opacity, zoom) {
    const { height, width } = info;
    const win = info.window && height > 1 ? info.window : null;
    const view = zoom && win ? win : [0, height, 0, width]; // rows r0:r1, columns c0:c1 shown
    const rows = view[1] - view[0], cols = view[3] - view[2];
    const scale = SIZE / Math.max(rows, cols);
    const w = Math.max(Math.round(cols * scale), 24), h = Math.max(Math.round(rows * scale), 12);
    const box = el("div", { class: `cell${zoom && win ? " zoomed" : ""}`, "data-row": panel.row, "data-col": panel.col });
    box.style.width = `${w}px`;
    box.style.height = `${h}px`;
    const place = (img) => {
      Object.assign(img.style, {
        width: `${width * w / cols}px`, height: `${height * h / rows}px`,
        left: `${-view[2] * w / cols}px`, top: `${-view[0] * h / rows}px`,
      });
      return img;
    };
    if (panel.image && height > 1) box.append(place(el("img", { class: "base", src: panel.image, alt: "", draggable: "false" })));
    const heat = el("img", { class: "heat", src: panel.png, alt: `heat map ${panel.row},${panel.col}`, draggable: "false" });
    heat.style.opacity = opacity;
    box.append(place(heat));
    if (win && !(zoom && win)) {
      const outline = el("div", { class: "window" });
      Object.assign(outline.style, {
        top: `${win[0] * h / rows}px`, height: `${(win[1] - win[0]) * h / rows}px`,
        left: `${win[2] * w / cols}px`, width: `${(win[3] - win[2]) * w / cols}px`,
      });
      box.append(outline);
    }
    if (height > 1) dragging(box, view, h, w);
    return box;
  }

  // One drag at a time; the window's listeners are set once, not per panel.
  let drag = null; // {box, rect, start, view, h, w}
  const at = (d, event) => {
    const r = d.box.getBoundingClientRect();
    return {
      y: Math.min(Math.max(event.clientY - r.top, 0), d.h - 0.01),
      x: Math.min(Math.max(event.clientX - r.left, 0), d.w - 0.01),
    };
  };
  window.addEventListener("mousemove", (event) => {
    if (!drag) return;
    const p = at(drag, event), s = drag.start;
    Object.assign(drag.rect.style, {
      top: `${Math.min(p.y, s.y)}px`, left: `${Math.min(p.x, s.x)}px`,
      width: `${Math.abs(p.x - s.x)}px`, height: `${Math.abs(p.y - s.y)}px`,
    });
  });
  window.addEventListener("mouseup", (event) => {
    if (!drag) return;
    const d = drag;
    drag = null;
    const p = at(d, event), s = d.start;
    d.rect.hidden = true;
    if (Math.abs(p.y - s.y) < 4 && Math.abs(p.x - s.x) < 4) return; // a click, not a drag
    // Pixels of the panel to rows and columns of the map's grid (the view's offset added).
    const [v0, v1, u0, u1] = d.view;
    const row = (y) => v0 + Math.floor(y * (v1 - v0) / d.h), col = (x) => u0 + Math.floor(x * (u1 - u0) / d.w);
    onWindow([row(Math.min(s.y, p.y)), row(Math.max(s.y, p.y)) + 1, col(Math.min(s.x, p.x)), col(Math.max(s.x, p.x)) + 1]);
  });

  function dragging(box, view, h, w) {
    const rect = el("div", { class: "drag", hidden: true });
    box.append(rect);
    box.addEventListener("mousedown", (event) => {
      event.preventDefault();
      drag = { box, rect, view, h, w, start: null };
      drag.start = at(drag, event);
      rect.hidden = false;
      Object.assign(rect.style, { top: `${drag.start.y}px`, left: `${drag.start.x}px`, width: "0px", height: "0px" });
    });
  }

  let last = null;

  function show(result) {
    last = result;
    grid.textContent = "";
    const info = result.grid;
    const count = info.rows * info.cols;
    SIZE = count <= 2 ? 320 : count <= 6 ? 200 : count <= 20 ? 150 : 110;
    const hasTarget = "target" in info.dims;
    const opacity = document.getElementById("opacity").value / 100;
    const zoom = document.getElementById("zoom").checked;
    const table = el("div", { class: "result-grid" });
    table.style.gridTemplateColumns = `auto repeat(${info.cols}, auto)`;
    table.append(el("div"));
    for (let c = 0; c < info.cols; c++) {
      const first = result.panels.find((p) => p.col === c);
      table.append(el("div", { class: "col-label", text: hasTarget ? colLabel(first, true) : "" }));
    }
    for (let r = 0; r < info.rows; r++) {
      const panels = result.panels.filter((p) => p.row === r);
      const label = rowLabel(panels[0]);
      if (!hasTarget) label.append(el("div", { class: "muted", text: colLabel(panels[0], false) }));
      table.append(label);
      for (const panel of panels) table.append(cell(panel, info, opacity, zoom));
    }
    grid.append(table);
    if (info.cut) grid.append(el("p", { class: "muted", text: "Only the first rows are shown." }));
    document.getElementById("scale-min").textContent = fmt(info.signed ? -info.limit : 0);
    document.getElementById("scale-max").textContent = fmt(info.limit);
    document.getElementById("colourbar").src = `/api/colourbar/${info.signed ? 1 : 0}.png`;
    const what = [info.name, info.grid !== "input" ? `at ${info.grid}` : null,
                  info.window ? `window [${info.window.join(", ")}]` : null,
                  `${info.height}×${info.width} map`].filter(Boolean);
    document.getElementById("result-title").textContent = what.join(" · ");
  }

  function setOpacity(value) {
    for (const img of grid.querySelectorAll("img.heat")) img.style.opacity = value;
  }

  return { show, setOpacity, redraw() { if (last) show(last); }, onWindow(fn) { onWindow = fn; }, clear() { grid.textContent = ""; } };
})();
