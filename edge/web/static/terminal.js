// Operator terminal: live feed over SSE, the pull alert with sound and countdown, one-key confirmations.
"use strict";
(function () {
  const W = JSON.parse(document.getElementById("words").textContent);
  const S = JSON.parse(document.getElementById("settings").textContent);
  const MAX_ROWS = 100;
  const $ = (id) => document.getElementById(id);
  // `{name}` filled from `args` (a number fills `{n}`); a value with words (`name_value` or the value
  // as a key) shows in words.
  const t = (key, args) => {
    if (!(key in W)) console.warn("no words for", key);
    const values = typeof args === "object" && args !== null ? args : { n: args };
    const word = (name, v) => W[name + "_" + v] || W[v] || String(v);
    return (W[key] || key).replace(/\{(\w+)\}/g, (m, name) => name in values ? word(name, values[name]) : m);
  };

  const rows = new Map(); // tracking_id -> parcel row data
  let alerts = []; // pending alerts, oldest first: {tracking_id, waybill, reasons, chute, kind, started}
  let resultFor = null; // tracking id whose open-box result is being asked for
  // Parcels the operator has already acted on: an alert replayed after a reconnect must not come back
  // (nor close an open-box form being filled in).
  const handled = new Set();
  let busy = false;
  let lastMessage = Date.now();
  let audio = null;
  let alarmBuffer = null;
  let lastBeep = 0;

  // ---- small helpers -------------------------------------------------------------------------
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  function hhmmss(iso) {
    const d = new Date(iso);
    return isNaN(d) ? "" : d.toLocaleTimeString(S.lang === "zh" ? "zh-CN" : "en-GB", { hour12: false });
  }
  function showError(message) {
    const box = $("error");
    box.textContent = t("error") + ": " + message;
    box.hidden = false;
    clearTimeout(showError.timer);
    showError.timer = setTimeout(() => { box.hidden = true; }, 8000);
  }
  function notice(message) {
    const box = $("notice");
    box.textContent = message;
    box.hidden = false;
    clearTimeout(notice.timer);
    notice.timer = setTimeout(() => { box.hidden = true; }, 4000);
  }
  function toLogin() {
    // The session ended (logout elsewhere, expiry, station restart): back to the login page.
    if (S.login) window.location.assign("/login?lang=" + encodeURIComponent(S.lang));
    else window.location.reload();
  }
  function post(path, body) {
    // Unsafe requests: exact JSON media type plus the session's CSRF token; the cookie says who.
    return fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": S.csrf },
      body: JSON.stringify(body),
      credentials: "same-origin",
    });
  }
  async function readError(resp) {
    // The one error shape {"error": {"code", "message"}}; anything else is shown by its status.
    try {
      const body = await resp.json();
      // A known code in the operator's words; a refused request adds its own detail.
      if (body && body.error && ("err_" + body.error.code) in W) {
        return W["err_" + body.error.code] + (body.error.code === "invalid_request" ? body.error.message : "");
      }
      if (body && body.error && body.error.message) return body.error.message;
    } catch (e) { /* not JSON */ }
    return "HTTP " + resp.status;
  }

  // ---- sound -------------------------------------------------------------------------------------
  async function loadSound() {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return;
    try {
      audio = new Ctx();
      const resp = await fetch("/alarm.wav");
      alarmBuffer = await audio.decodeAudioData(await resp.arrayBuffer());
    } catch (e) { audio = null; }
    updateSoundButton();
  }
  function updateSoundButton() {
    const on = audio && audio.state === "running";
    const b = $("sound");
    b.textContent = on ? t("sound_ready") : t("sound_on");
    b.setAttribute("aria-pressed", on ? "true" : "false");
  }
  function unlockSound() {
    // Browsers only allow sound after a touch or key press; any interaction unlocks it.
    if (audio && audio.state !== "running") audio.resume().then(updateSoundButton, () => {});
  }
  function beep() {
    if (!audio || !alarmBuffer || audio.state !== "running") return;
    const src = audio.createBufferSource();
    src.buffer = alarmBuffer;
    src.connect(audio.destination);
    src.start();
    document.body.dataset.beeps = String(Number(document.body.dataset.beeps || 0) + 1);
  }

  // ---- parcel list -------------------------------------------------------------------------------
  function rowFromEvent(ev) {
    const d = ev.divert || {};
    return {
      tracking_id: ev.tracking_id, waybill: ev.waybill, at: ev.at, decision: ev.decision,
      reasons: ev.reasons || [], divert: d.outcome || null, chute: d.chute || null, actions: [],
    };
  }
  function resultLabel(result) {
    // Stored as "code" or "code: note"; the code gets its label in the page's language.
    const cut = result.indexOf(":");
    const code = cut < 0 ? result : result.slice(0, cut);
    const label = W["result_" + code];
    return label ? label + (cut < 0 ? "" : result.slice(cut)) : result;
  }
  function statusCell(p) {
    const td = el("td");
    const done = p.actions.map((a) => t("done_" + a.action) + (a.result ? " · " + resultLabel(a.result) : ""));
    if (done.length) td.appendChild(el("span", "done", done[done.length - 1]));
    const acted = new Set(p.actions.map((a) => a.action));
    if (acted.has("pulled") && !acted.has("open_box")) {
      const b = el("button", "btn btn-quiet row-btn", t("record_result"));
      b.type = "button";
      b.addEventListener("click", () => askResult(p.tracking_id));
      td.appendChild(document.createTextNode(" "));
      td.appendChild(b);
    }
    return td;
  }
  function renderRow(p) {
    const tr = el("tr", "d-" + p.decision);
    tr.id = "row-" + p.tracking_id;
    tr.dataset.tracking = p.tracking_id;
    tr.appendChild(el("td", "", hhmmss(p.at)));
    const wb = el("td");
    wb.appendChild(el("span", p.waybill ? "waybill" : "waybill none", p.waybill || t("no_waybill")));
    tr.appendChild(wb);
    const dc = el("td");
    dc.appendChild(el("span", "chip chip-" + p.decision, t(p.decision)));
    tr.appendChild(dc);
    tr.appendChild(el("td", "reasons", p.reasons.map((r) => t("reason_" + r)).join(S.lang === "zh" ? "，" : ", ")));
    tr.appendChild(el("td", "", p.divert ? t(p.divert) + (p.chute ? " → " + p.chute : "") : ""));
    tr.appendChild(statusCell(p));
    return tr;
  }
  function upsertRow(p, fresh) {
    const old = rows.get(p.tracking_id);
    if (old && !p.actions.length) p.actions = old.actions;
    rows.set(p.tracking_id, p);
    const tr = renderRow(p);
    const existing = $("row-" + p.tracking_id);
    const body = $("parcel-rows");
    if (existing) existing.replaceWith(tr);
    else body.insertBefore(tr, body.firstChild);
    if (fresh) {
      tr.classList.add("new");
      setTimeout(() => tr.classList.remove("new"), 1500);
    }
    while (body.children.length > MAX_ROWS) {
      const last = body.lastChild;
      rows.delete(last.dataset.tracking);
      last.remove();
    }
    $("no-parcels").hidden = body.children.length > 0;
  }
  function addAction(ev) {
    const p = rows.get(ev.tracking_id);
    if (p) {
      p.actions = p.actions.concat([{ action: ev.action, result: ev.result, at: ev.at }]);
      upsertRow(p, false);
    }
    handled.add(ev.tracking_id);
    alerts = alerts.filter((a) => a.tracking_id !== ev.tracking_id);
    if (ev.action === "open_box" && resultFor === ev.tracking_id) resultFor = null;
    renderAlert();
  }

  // ---- the alert ---------------------------------------------------------------------------------
  function addAlert(a, ageSeconds) {
    if (!a.tracking_id || handled.has(a.tracking_id) || alerts.some((x) => x.tracking_id === a.tracking_id)) return;
    alerts.push({
      tracking_id: a.tracking_id, waybill: a.waybill, reasons: a.reasons || [], chute: a.chute,
      kind: a.kind || "pull", started: Date.now() - 1000 * (ageSeconds || 0),
    });
    // A new pull outranks an open-box result still being chosen: that one stays on its row.
    resultFor = null;
    renderAlert();
    const first = document.querySelector("#alert-actions button");
    if (first && (document.activeElement === document.body || !document.activeElement)) first.focus();
    lastBeep = 0;
    tick();
  }
  function current() { return alerts.length ? alerts[0] : null; }
  function renderAlert() {
    const box = $("alert");
    const a = current();
    const asking = resultFor !== null;
    if (!a && !asking) {
      box.hidden = true;
      document.body.dataset.alert = "";
      return;
    }
    box.hidden = false;
    const shown = asking ? rows.get(resultFor) || { tracking_id: resultFor, reasons: [] } : a;
    document.body.dataset.alert = shown.tracking_id;
    box.classList.toggle("pulled", asking);
    $("alert-title").textContent = asking ? t("pulled_choose_result")
      : t(a.kind === "divert_failed" ? "alert_divert_failed" : "alert_pull");
    $("alert-waybill").textContent = shown.waybill || t("no_waybill");
    $("alert-chute").textContent = shown.chute || "—";
    const ul = $("alert-reasons");
    ul.replaceChildren(...(shown.reasons || []).map((r) => el("li", "", t("reason_" + r))));
    const more = alerts.length - (asking ? 0 : 1);
    $("alert-more").hidden = more <= 0;
    $("alert-more").textContent = t("more_alerts", more);
    $("alert-actions").hidden = asking;
    $("result-form").hidden = !asking;
    $("alert-countdown").parentElement.hidden = asking;
    if (asking) $("result-form").querySelector("button").focus();
  }
  function tick() {
    const a = current();
    if (!a || resultFor !== null) return;
    const left = Math.ceil(S.confirm_within_s - (Date.now() - a.started) / 1000);
    const over = left <= 0;
    $("alert-countdown").textContent = over ? t("overdue_by", Math.abs(left)) : t("seconds_left", left);
    $("alert").classList.toggle("overdue", over);
    // Repeat the alarm until someone answers, faster once the time is up.
    const every = over ? 2000 : 5000;
    if (Date.now() - lastBeep >= every) {
      lastBeep = Date.now();
      beep();
    }
  }

  // ---- confirmations -----------------------------------------------------------------------------
  async function send(trackingId, action, result) {
    if (busy) return false;
    busy = true;
    document.querySelectorAll("#alert button").forEach((b) => { b.disabled = true; });
    try {
      const resp = await post("/api/confirm", { tracking_id: trackingId, action: action, result: result || "" });
      if (resp.status === 401) { toLogin(); return false; }
      if (!resp.ok) {
        showError(await readError(resp));
        return false;
      }
      const body = await resp.json();
      addAction(body.event);
      notice(t("saved") + ": " + (body.event.waybill || trackingId) + " · " + t("done_" + action));
      return true;
    } catch (e) {
      showError(t("connection_lost"));
      return false;
    } finally {
      busy = false;
      document.querySelectorAll("#alert button").forEach((b) => { b.disabled = false; });
    }
  }
  function askResult(trackingId) {
    resultFor = trackingId;
    $("result-note").value = "";
    renderAlert();
  }
  async function act(action) {
    const a = current();
    if (!a || resultFor !== null) return;
    if (action === "open_box") {
      // Opened on the spot: the parcel is in hand, so it counts as pulled before the result.
      if (await send(a.tracking_id, "pulled")) askResult(a.tracking_id);
      return;
    }
    const id = a.tracking_id;
    if (await send(id, action) && action === "pulled") askResult(id);
  }
  async function chooseResult(code) {
    const id = resultFor;
    if (id === null) return;
    if (!code) {
      resultFor = null;
      renderAlert();
      return;
    }
    const note = $("result-note").value.trim();
    if (await send(id, "open_box", note ? code + ": " + note : code)) {
      resultFor = null;
      renderAlert();
    }
  }

  // ---- health panel ------------------------------------------------------------------------------
  // A known cause is shown as a sentence with what to do; the raw detail stays in the tooltip.
  // A plain state the device reports ("connected", "replay finished") is shown in words as well.
  function detailOf(cause, raw, since, said) {
    const words = said ? t(said.key, said.args) : cause ? t(cause) : raw;
    const span = el("span", "detail", [words, since].filter(Boolean).join(" · "));
    if ((said || cause) && raw) span.title = raw;
    return span;
  }

  function renderHealth(h) {
    const items = h.devices.map((d) => {
      const li = el("li", "s-" + d.state);
      li.dataset.device = d.name;
      li.appendChild(el("span", "name", t("device_" + d.name) === "device_" + d.name ? d.name : t("device_" + d.name)));
      li.appendChild(el("span", "state", t(d.state)));
      const since = d.seconds_since_seen === null ? "" : t("seconds_ago", Math.round(d.seconds_since_seen));
      li.appendChild(detailOf(d.cause, d.detail, since, d.said));
      return li;
    });
    const sync = el("li", "s-" + h.sync.state);
    sync.dataset.device = "sync";
    sync.appendChild(el("span", "name", t("device_sync")));
    const s = h.sync.seconds_since_sync;
    sync.appendChild(el("span", "state", h.sync.state === "not_configured" ? t("offline_mode")
      : s === null ? t("never") : t("seconds_ago", Math.round(s))));
    // A refusal the operator can act on gets the terminal's own words; anything else its cause.
    if (h.sync.error) sync.appendChild(h.sync.error_code
      ? el("span", "detail", t("sync_" + h.sync.error_code))
      : detailOf(h.sync.cause, h.sync.error, ""));
    items.push(sync);
    const outbox = el("li", "s-up");
    outbox.dataset.device = "outbox";
    outbox.appendChild(el("span", "name", t("device_outbox")));
    outbox.appendChild(el("span", "state", h.outbox + " " + t("events")));
    items.push(outbox);
    $("health").replaceChildren(...items);
    $("health").classList.remove("stale");
  }

  // ---- live feed ---------------------------------------------------------------------------------
  function connect() {
    const es = new EventSource("/api/stream");
    let dropped = false;
    const seen = () => {
      lastMessage = Date.now();
      $("connection").hidden = true;
    };
    es.addEventListener("open", () => {
      seen();
      // Back after a break: the stream's short history may not cover it, so reload the list too.
      if (dropped) loadRecent();
      dropped = false;
    });
    es.addEventListener("error", async () => {
      dropped = true;
      if (es.readyState !== EventSource.CLOSED) return;
      // Refused outright (not a dropped line): find out whether the login is still valid.
      try {
        const resp = await fetch("/api/health");
        if (resp.status === 401) { toLogin(); return; }
      } catch (e) { /* station down: try again below */ }
      setTimeout(connect, 3000);
    });
    es.addEventListener("closed", (m) => {
      es.close();
      const why = JSON.parse(m.data).reason;
      if (why === "logged_out") toLogin();
      else showError(t("displaced"));
    });
    es.addEventListener("snapshot", (m) => { seen(); renderHealth(JSON.parse(m.data)); });
    es.addEventListener("parcel", (m) => { seen(); upsertRow(rowFromEvent(JSON.parse(m.data).event), true); });
    es.addEventListener("alert", (m) => {
      seen();
      const a = JSON.parse(m.data);
      if (a.kind === "store_failed") showError(t("store_failed") + (a.detail || ""));
      else if (a.kind === "pull" || a.kind === "divert_failed") addAlert(a, 0);
    });
    es.addEventListener("operator", (m) => { seen(); addAction(JSON.parse(m.data).event); });
    es.addEventListener("divert", (m) => {
      // The outcome of a divert the parcel's row shows as still being sent.
      seen();
      const d = JSON.parse(m.data).event || {};
      const p = rows.get(d.tracking_id);
      if (p) upsertRow(Object.assign({}, p, { divert: d.outcome || p.divert, chute: d.chute || p.chute }), false);
    });
    es.addEventListener("order", (m) => {
      seen();
      const o = JSON.parse(m.data).order || {};
      notice(t("new_order") + ": " + (o.waybill || o.sender_token || o.order_id || ""));
    });
    es.addEventListener("health", seen);
  }
  async function loadRecent() {
    try {
      const resp = await fetch("/api/parcels?limit=50");
      if (resp.status === 401) { toLogin(); return; }
      if (!resp.ok) { showError(await readError(resp)); return; }
      const body = await resp.json();
      body.parcels.slice().reverse().forEach((p) => {
        if (!rows.has(p.tracking_id)) upsertRow(p, false);
        if (p.alert) addAlert(p, p.age_s);
      });
    } catch (e) { showError(t("connection_lost")); }
  }

  // ---- keyboard and buttons ----------------------------------------------------------------------
  const KEYS = { p: "pulled", n: "not_found", o: "open_box" };
  const RESULTS = { 1: "as_declared", 2: "counterfeit", 3: "prohibited", 4: "mismatch" };
  document.addEventListener("keydown", (e) => {
    unlockSound();
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const typing = e.target instanceof HTMLInputElement;
    if (e.key === "Escape" && resultFor !== null) { e.preventDefault(); chooseResult(""); return; }
    if (typing) return;
    const k = e.key.toLowerCase();
    if (resultFor !== null && RESULTS[k]) { e.preventDefault(); chooseResult(RESULTS[k]); return; }
    if (resultFor === null && KEYS[k] && current()) { e.preventDefault(); act(KEYS[k]); return; }
    if (k === "l") { $("lang-switch").click(); }
  });
  document.addEventListener("pointerdown", unlockSound);
  document.querySelectorAll("#alert-actions button").forEach((b) => b.addEventListener("click", () => act(b.dataset.action)));
  document.querySelectorAll("#result-form button").forEach((b) => b.addEventListener("click", () => chooseResult(b.dataset.result)));
  $("result-form").addEventListener("submit", (e) => { e.preventDefault(); chooseResult("as_declared"); });
  $("sound").addEventListener("click", () => { unlockSound(); beep(); });
  if ($("logout")) {
    $("logout").addEventListener("click", async () => {
      try { await post("/api/logout", {}); } catch (e) { /* going to the login page anyway */ }
      toLogin();
    });
  }

  // ---- clock and watchdog ------------------------------------------------------------------------
  setInterval(() => {
    $("clock").textContent = new Date().toLocaleTimeString(S.lang === "zh" ? "zh-CN" : "en-GB", { hour12: false });
    tick();
    // The server sends health every second: silence for 5 s means the link to the station is gone.
    if (Date.now() - lastMessage > 5000) {
      $("connection").hidden = false;
      $("health").classList.add("stale");
    }
  }, 250);

  loadSound();
  connect();
  loadRecent();
})();
