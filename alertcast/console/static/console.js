// alertcast console: the few things a server-rendered page cannot do by itself.
// Every change is a call to the JSON API (/v1/...) with the session cookie and its CSRF token;
// the API's own answers (202, 422 with field paths, 403 with the reason) are shown as they are.
"use strict";
(function () {
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));
  const csrf = ($('meta[name="csrf-token"]') || {}).content || "";
  const W = JSON.parse(($("#words") || {}).textContent || "{}");

  async function api(method, url, body) {
    const headers = { "X-CSRF-Token": csrf, Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const resp = await fetch(url, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    return { status: resp.status, ok: resp.ok, data: data || {} };
  }

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function show(node, text) {
    if (!node) return;
    node.textContent = text || "";
    node.hidden = !text;
  }

  function debounce(fn, ms) {
    let timer = null;
    return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
  }

  // ---- fields named by their JSON path (data-path), errors shown at the field -------------
  function value(input) {
    const type = input.dataset.type;
    if (type === "bool") return input.checked;
    const raw = input.value.trim();
    if (raw === "") return undefined;
    if (type === "number") return Number(raw);
    if (type === "int") return Number.isInteger(Number(raw)) ? Number(raw) : raw;
    if (type === "list") return raw.split(/[,，、\s]+/).filter(Boolean);
    return raw;
  }

  function collect(form) {
    const out = {};
    for (const input of $$("[data-path]", form)) {
      if (input.closest("fieldset[disabled]")) continue;
      const v = value(input);
      if (v === undefined) continue;
      const parts = input.dataset.path.split(".");
      let node = out;
      parts.slice(0, -1).forEach((p) => { node = node[p] = node[p] || {}; });
      node[parts[parts.length - 1]] = v;
    }
    return out;
  }

  function clearErrors(form) {
    $$("[aria-invalid]", form).forEach((n) => n.removeAttribute("aria-invalid"));
    $$(".error", form).forEach((n) => { n.textContent = ""; });
  }

  // The field of a path, or of its longest prefix (area.codes.0 -> area.codes).
  function fieldFor(form, path) {
    const parts = path.split(".");
    for (let n = parts.length; n > 0; n--) {
      const input = $(`[data-path="${CSS.escape(parts.slice(0, n).join("."))}"]`, form);
      if (input && !input.closest("fieldset[disabled]")) return input;
    }
    return null;
  }

  function showProblem(form, problem, box) {
    clearErrors(form);
    const loose = [];
    for (const e of problem.errors || []) {
      const input = fieldFor(form, e.field);
      if (!input) { loose.push(`${e.field}: ${e.message}`); continue; }
      input.setAttribute("aria-invalid", "true");
      const slot = document.getElementById(input.getAttribute("aria-describedby"));
      if (slot) slot.textContent = (slot.textContent ? slot.textContent + "; " : "") + e.message;
    }
    const general = (problem.errors || []).length ? (loose.length ? loose.join("; ") : W.js_fix)
      : (problem.detail || W.js_failed);
    show(box, general);
    const first = $("[aria-invalid=true]", form);
    return first;
  }

  // ---- compose: live preview and submit ----------------------------------------------------
  function previewCard(entry) {
    const card = el("article", "text card");
    card.dataset.account = entry.account;
    const h = el("h3", "", entry.account + " ");
    const payload = entry.payload || {};
    h.append(el("small", "", entry.channel + (payload.format ? " · " + payload.format : "")));
    card.append(h);
    card.append(el("p", "why " + (entry.chosen ? "chosen" : "not-chosen"),
      (entry.chosen ? W.chosen : W.not_chosen) + ": " + entry.why));
    if (entry.error) card.append(el("p", "problem", entry.error));
    const text = payload.text || payload.content || payload.title;
    if (text) card.append(el("pre", "payload", text));
    for (const [field, m] of Object.entries(payload.lengths || {})) {
      const unit = W["unit_" + m.unit] || m.unit;
      card.append(el("p", "length" + (m.used > m.limit ? " over" : ""),
        `${field}: ${m.used} / ${m.limit} ${unit}`));
    }
    return card;
  }

  function setupCompose(form) {
    const box = $("#form-error"), out = $("#preview"), kind = $("#f-kind");
    const status = $("#f-status"), banner = $("#drill-banner"), occurred = $("#f-occurred_at");
    if (occurred && !occurred.value) occurred.value = nowWithOffset();
    const sync = () => {
      for (const fs of $$("fieldset.details", form)) {
        const on = fs.dataset.kind === kind.value;
        fs.disabled = !on; fs.hidden = !on;
      }
      banner.hidden = status.value === "actual";
    };
    const preview = async () => {
      const r = await api("POST", "/v1/render", collect(form));
      if (!r.ok) { showProblem(form, r.data, box); return; }
      clearErrors(form); show(box, "");
      const wrap = el("div", "texts");
      (r.data.accounts || []).forEach((e) => wrap.append(previewCard(e)));
      if (!wrap.children.length) wrap.append(el("p", "", W.no_texts));
      out.replaceChildren(wrap);
    };
    const later = debounce(preview, 400);
    kind.addEventListener("change", () => { sync(); later(); });
    status.addEventListener("change", () => { sync(); later(); });
    form.addEventListener("input", later);
    $("#preview-button").addEventListener("click", preview);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const r = await api("POST", "/v1/incidents", collect(form));
      if (r.status === 202 && r.data.id) { location.assign("/console/incidents/" + r.data.id); return; }
      const first = showProblem(form, r.data, box);
      (first || box).focus();
    });
    sync();
  }

  function nowWithOffset() {
    const d = new Date(), off = -d.getTimezoneOffset(), pad = (n) => String(n).padStart(2, "0");
    const sign = off >= 0 ? "+" : "-", a = Math.abs(off);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:` +
      `${pad(d.getMinutes())}:${pad(d.getSeconds())}${sign}${pad(Math.floor(a / 60))}:${pad(a % 60)}`;
  }

  // ---- incident: the live grid, cancel with its preview, update ----------------------------
  function setupLive(section) {
    const id = section.dataset.incident, note = $("#live-status");
    const refresh = debounce(async () => {
      const resp = await fetch(`/console/incidents/${encodeURIComponent(id)}/grid`,
        { credentials: "same-origin" });
      if (!resp.ok) return;
      const doc = new DOMParser().parseFromString(await resp.text(), "text/html");
      const fresh = doc.getElementById("grid");
      if (fresh) $("#grid").replaceWith(fresh);
    }, 200);
    let poll = null;
    const stream = new EventSource("/v1/stream");
    stream.onopen = () => { note.textContent = "● " + W.js_live; clearInterval(poll); poll = null; };
    stream.onerror = () => {
      note.textContent = W.js_reconnecting;
      if (!poll) poll = setInterval(refresh, 3000);
    };
    ["delivery", "incident", "gap"].forEach((t) => stream.addEventListener(t, refresh));
    section.refresh = refresh;
  }

  function setupCancel(form) {
    const id = form.dataset.incident, reason = $("#cancel-reason"), out = $("#cancel-preview");
    const box = $("#action-error");
    const preview = debounce(async () => {
      const q = new URLSearchParams({ reason: reason.value });
      const resp = await fetch(`/console/incidents/${encodeURIComponent(id)}/cancel-preview?${q}`,
        { credentials: "same-origin" });
      if (!resp.ok) return;
      const doc = new DOMParser().parseFromString(await resp.text(), "text/html");
      out.replaceChildren(...doc.body.childNodes);
    }, 300);
    reason.addEventListener("input", preview);
    preview();
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const r = await api("POST", `/v1/incidents/${encodeURIComponent(id)}/cancel`,
        { reason: reason.value.trim() });
      if (r.status === 202) { location.reload(); return; }
      const first = showProblem(form, { ...r.data, errors: (r.data.errors || []).map(
        (e) => ({ ...e, field: e.field.replace(/^cancellation\./, "") })) }, box);
      if (first) first.focus(); else reason.focus();
    });
    reason.dataset.path = "reason";
  }

  function setupUpdate(form) {
    const id = form.dataset.incident, box = $("#action-error");
    const before = collect(form);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const now = collect(form), patch = {};
      for (const [k, v] of Object.entries(now)) if (v !== before[k]) patch[k] = v;
      const r = await api("POST", `/v1/incidents/${encodeURIComponent(id)}/update`, patch);
      if (r.status === 202) { location.reload(); return; }
      showProblem(form, r.data, box);
    });
  }

  // ---- approvals: reject a held message with a reason ---------------------------------------
  function setupReject(form) {
    const id = form.dataset.reject, reason = $("input[name=reason]", form);
    const box = $(`[data-result="${CSS.escape(id)}"]`);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const r = await api("POST", `/v1/incidents/${encodeURIComponent(id)}/reject`,
        { reason: reason.value.trim() });
      if (r.ok) { location.reload(); return; }
      const first = showProblem(form, { ...r.data, errors: (r.data.errors || []).map(
        (e) => ({ ...e, field: e.field.replace(/^rejection\./, "") })) }, box);
      (first || reason).focus();
    });
  }

  // ---- buttons: approve, retry, resume -----------------------------------------------------
  function setupButtons() {
    document.addEventListener("click", async (ev) => {
      const b = ev.target.closest("button[data-approve],button[data-retry],button[data-resume]");
      if (!b) return;
      let url;
      if (b.dataset.approve) url = `/v1/incidents/${encodeURIComponent(b.dataset.approve)}/approve`;
      else if (b.dataset.retry) url = `/v1/deliveries/${encodeURIComponent(b.dataset.retry)}/retry`;
      else url = `/v1/channels/${encodeURIComponent(b.dataset.resume)}/resume`;
      b.disabled = true;
      const r = await api("POST", url);
      if (r.ok) { location.reload(); return; }
      b.disabled = false;
      const box = (b.dataset.approve && $(`[data-result="${CSS.escape(b.dataset.approve)}"]`))
        || $("#action-error");
      show(box, r.data.detail || `${W.js_failed} (${r.status})`);
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const compose = $("#compose"), live = $("#live"), cancel = $("#cancel"), update = $("#update");
    if (compose) setupCompose(compose);
    if (live) setupLive(live);
    if (cancel) setupCancel(cancel);
    if (update) setupUpdate(update);
    $$("form[data-reject]").forEach(setupReject);
    setupButtons();
  });
})();
