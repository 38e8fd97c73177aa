// How the desk pages call the API: JSON (or raw bytes) with the session's CSRF token; every error,
// which has the one shape {"error": {"code", "message"}}, is shown in the page's error region as written.
"use strict";
window.pgApi = (function () {
  const $ = (id) => document.getElementById(id);
  const csrf = document.querySelector('meta[name="csrf-token"]').content;

  function showError(message) {
    const box = $("error");
    box.textContent = message;
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
      showError(String(e));
      return null;
    }
    let data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    if (!resp.ok) {
      showError(data && data.error ? data.error.message + " (" + data.error.code + ")" : "HTTP " + resp.status);
      return null;
    }
    return data;
  }
  return { call: call, showError: showError };
})();
