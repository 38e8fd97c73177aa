// How the desk pages call the API: JSON (or raw bytes) with the session's CSRF token; every error,
// which has the one shape {"error": {"code", "message"}}, is shown in the page's error region in the
// page's words where its code has them (the server's English kept as the tooltip).
"use strict";
window.pgApi = (function () {
  const $ = (id) => document.getElementById(id);
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const W = JSON.parse(document.getElementById("words").textContent);

  function showError(message, raw) {
    const box = $("error");
    box.textContent = message;
    box.title = raw || "";
    box.hidden = false;
    box.scrollIntoView({ block: "nearest" });
  }
  // `type` given: `body` is sent as is with that content type (an image); else as JSON.
  async function call(method, url, body, type) {
    $("error").hidden = true;
    const json = type === undefined;
    let resp;
    try {
      resp = await fetch(url, {
        method: method,
        credentials: "same-origin",
        headers: { "Content-Type": json ? "application/json" : type, "X-CSRF-Token": csrf },
        body: body === undefined ? undefined : json ? JSON.stringify(body) : body,
      });
    } catch (e) {
      showError(W.err_network || String(e), String(e));
      return null;
    }
    let data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    if (!resp.ok) {
      // A broken rule ("invalid") on an English page also names the field, as the server wrote it.
      const err = data && data.error;
      const known = err && ("err_" + err.code) in W;
      const english = document.documentElement.lang === "en";
      const msg = !err ? "HTTP " + resp.status
        : !known ? err.message + " (" + err.code + ")"
        : W["err_" + err.code] + (err.code === "invalid" && english ? err.message : "");
      showError(msg, err ? err.message : "");
      return null;
    }
    return data;
  }
  return { call: call, showError: showError };
})();
