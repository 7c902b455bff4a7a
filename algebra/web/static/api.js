// Talking to the server: this tab's id, JSON requests, and polling a job until it ends.
"use strict";

const TAB = (() => {
  let id = sessionStorage.getItem("ialgebra-tab");
  if (!id) {
    const bytes = new Uint8Array(12);
    crypto.getRandomValues(bytes);
    id = "tab-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    sessionStorage.setItem("ialgebra-tab", id);
  }
  return id;
})();

class ApiError extends Error {
  constructor(payload) {
    super(payload.message);
    this.payload = payload;
  }
}

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  };
  const response = await fetch(path, options);
  let data;
  try {
    data = await response.json();
  } catch (e) {
    throw new ApiError({ message: `the server answered ${response.status} without JSON`, kind: "request" });
  }
  if (!response.ok) throw new ApiError(data.error || { message: `HTTP ${response.status}` });
  return data;
}

// Poll a job, calling onProgress with each snapshot, until it is done, failed or cancelled.
async function pollJob(job, onProgress) {
  let delay = 10;
  for (;;) {
    const snap = await api(`/api/job/${TAB}/${job}`);
    if (onProgress) onProgress(snap);
    if (!["queued", "running"].includes(snap.state)) return snap;
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 1.5, 250);
  }
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(key, value);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function fmt(value) {
  if (value === null || value === undefined) return "–";
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e4)) return value.toExponential(2);
  return String(Number(value.toPrecision(3))); // 3 significant digits, no trailing zeros
}
