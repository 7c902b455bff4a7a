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

  // A panel: the image, the map over it, the current window's outline, and a drag rectangle.
  function cell(panel, info, opacity) {
    const { height, width } = info;
    const scale = SIZE / Math.max(height, width);
    const w = Math.max(Math.round(width * scale), 24), h = Math.max(Math.round(height * scale), 12);
    const box = el("div", { class: "cell", "data-row": panel.row, "data-col": panel.col });
    box.style.width = `${w}px`;
    box.style.height = `${h}px`;
    if (panel.image && height > 1) box.append(el("img", { class: "base", src: panel.image, alt: "", draggable: "false" }));
    const heat = el("img", { class: "heat", src: panel.png, alt: `heat map ${panel.row},${panel.col}`, draggable: "false" });
    heat.style.opacity = opacity;
    box.append(heat);
    const window_ = info.window;
    if (window_ && height > 1) {
      const outline = el("div", { class: "window" });
      Object.assign(outline.style, {
        top: `${window_[0] * h / height}px`, height: `${(window_[1] - window_[0]) * h / height}px`,
        left: `${window_[2] * w / width}px`, width: `${(window_[3] - window_[2]) * w / width}px`,
      });
      box.append(outline);
    }
    if (height > 1) dragging(box, height, width, h, w);
    return box;
  }

  // One drag at a time; the window's listeners are set once, not per panel.
  let drag = null; // {box, rect, start, rows, cols, h, w}
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
    const r0 = Math.floor(Math.min(s.y, p.y) * d.rows / d.h), r1 = Math.floor(Math.max(s.y, p.y) * d.rows / d.h) + 1;
    const c0 = Math.floor(Math.min(s.x, p.x) * d.cols / d.w), c1 = Math.floor(Math.max(s.x, p.x) * d.cols / d.w) + 1;
    onWindow([r0, r1, c0, c1]);
  });

  function dragging(box, rows, cols, h, w) {
    const rect = el("div", { class: "drag", hidden: true });
    box.append(rect);
    box.addEventListener("mousedown", (event) => {
      event.preventDefault();
      drag = { box, rect, rows, cols, h, w, start: null };
      drag.start = at(drag, event);
      rect.hidden = false;
      Object.assign(rect.style, { top: `${drag.start.y}px`, left: `${drag.start.x}px`, width: "0px", height: "0px" });
    });
  }

  function show(result) {
    grid.textContent = "";
    const info = result.grid;
    const count = info.rows * info.cols;
    SIZE = count <= 2 ? 260 : count <= 6 ? 190 : count <= 20 ? 150 : 110;
    const hasTarget = "target" in info.dims;
    const opacity = document.getElementById("opacity").value / 100;
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
      for (const panel of panels) table.append(cell(panel, info, opacity));
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

  return { show, setOpacity, onWindow(fn) { onWindow = fn; }, clear() { grid.textContent = ""; } };
})();
