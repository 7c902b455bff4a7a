// The query editor: a live syntax check with the error and a caret under the column, and a
// completion list of layers, methods, parameters and bound names at the cursor.
"use strict";

const Editor = (() => {
  const box = document.getElementById("query");
  const list = document.getElementById("completions");
  const errorBox = document.getElementById("query-error");
  const errorText = document.getElementById("error-text");
  let checkTimer = null;
  let completion = null; // {start, end, options, index}
  let bindings = () => ({ models: {}, inputs: [] });
  let onChange = () => {};

  function showError(error) {
    if (!error) {
      errorBox.hidden = true;
      errorText.textContent = "";
      box.classList.remove("bad");
      return;
    }
    errorText.textContent = "";
    box.classList.toggle("bad", error.line !== undefined);
    if (error.line !== undefined) {
      const lines = box.value.split("\n");
      const source = lines[Math.min(error.line, lines.length) - 1] || "";
      const prefix = `${error.line} │ `;
      const pad = " ".repeat(prefix.length + Math.max(error.column - 1, 0));
      errorText.append(
        el("span", { class: "source", text: prefix + source + "\n" }),
        el("span", { class: "caret", text: pad + "^" }),
        el("span", { class: "reason", text: " " + error.reason + (error.hint ? "  " + error.hint : "") }),
      );
    } else {
      errorText.append(el("span", { class: "reason", text: error.message }));
    }
    errorBox.hidden = false;
  }

  async function check() {
    if (!box.value.trim()) return showError(null);
    try {
      const answer = await api("/api/check", { query: box.value });
      showError(answer.ok ? null : answer.error);
      onChange(answer);
    } catch (e) {
      showError(e.payload || { message: String(e) });
    }
  }

  // Where the cursor is on screen: a hidden copy of the text up to it, with a marker.
  function caretPoint() {
    const style = getComputedStyle(box);
    const mirror = el("div", { class: "mirror" });
    for (const p of ["fontFamily", "fontSize", "lineHeight", "padding", "border", "width",
                     "letterSpacing", "whiteSpace", "wordWrap", "boxSizing"]) mirror.style[p] = style[p];
    mirror.textContent = box.value.slice(0, box.selectionStart);
    const marker = el("span", { text: "\u200b" });
    mirror.append(marker);
    document.body.append(mirror);
    const point = { x: marker.offsetLeft, y: marker.offsetTop + marker.offsetHeight };
    mirror.remove();
    return { x: point.x - box.scrollLeft, y: point.y - box.scrollTop };
  }

  function closeList() {
    completion = null;
    list.hidden = true;
  }

  function drawList() {
    list.textContent = "";
    completion.options.forEach((option, i) => {
      list.append(el("li", {
        class: i === completion.index ? "active" : "", text: option,
        onmousedown: (event) => { event.preventDefault(); accept(i); },
      }));
    });
    const at = caretPoint();
    list.style.left = `${at.x}px`;
    list.style.top = `${at.y + 4}px`;
    list.hidden = false;
  }

  let asked = 0; // completions answered out of order are dropped: only the last one counts

  async function complete(force) {
    const mine = ++asked;
    const cursor = box.selectionStart;
    const before = box.value.slice(0, cursor);
    if (!force && !/[A-Za-z0-9_.(,\s]$/.test(before)) return closeList();
    try {
      const { models, inputs } = bindings();
      const text = box.value;
      const answer = await api("/api/complete", { query: text, cursor, models, inputs });
      if (mine !== asked || box.value !== text) return; // the text moved on meanwhile
      const typed = box.value.slice(answer.start, cursor);
      if (!answer.options.length || (!force && !typed && !["layer", "method", "model", "input", "param"].includes(answer.kind))) {
        return closeList();
      }
      completion = { ...answer, index: 0 };
      drawList();
    } catch (e) {
      if (mine === asked) closeList();
    }
  }

  function accept(i) {
    const { start, end, options } = completion;
    const word = options[i];
    box.value = box.value.slice(0, start) + word + box.value.slice(end);
    box.selectionStart = box.selectionEnd = start + word.length;
    closeList();
    box.focus();
    scheduleCheck();
  }

  function scheduleCheck() {
    clearTimeout(checkTimer);
    checkTimer = setTimeout(check, 200);
  }

  box.addEventListener("input", (event) => {
    scheduleCheck();
    if (event.inputType && event.inputType.startsWith("insert")) complete(false);
    else closeList();
  });
  box.addEventListener("blur", () => setTimeout(closeList, 150));
  box.addEventListener("keydown", (event) => {
    if (event.ctrlKey && event.key === " ") {
      event.preventDefault();
      complete(true);
      return;
    }
    if (!completion) return;
    const n = completion.options.length;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      completion.index = (completion.index + (event.key === "ArrowDown" ? 1 : n - 1)) % n;
      drawList();
    } else if ((event.key === "Enter" && !event.ctrlKey) || event.key === "Tab") {
      event.preventDefault();
      accept(completion.index);
    } else if (event.key === "Escape") {
      closeList();
    }
  });

  return {
    get text() { return box.value; },
    set text(value) { box.value = value; scheduleCheck(); },
    check,
    showError,
    onBindings(fn) { bindings = fn; },
    onChange(fn) { onChange = fn; },
    focus() { box.focus(); },
  };
})();
