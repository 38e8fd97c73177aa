// What every page script of the server shares: its data and words, messages, and API calls with CSRF.
"use strict";
window.pg = (function () {
  const $ = (id) => document.getElementById(id);
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const json = (id) => ($(id) ? JSON.parse($(id).textContent) : {});

  function showError(message) {
    const box = $("error");
    box.textContent = message;
    box.hidden = false;
    box.scrollIntoView({ block: "nearest" });
  }
  function notice(message) {
    const box = $("notice");
    box.textContent = message;
    box.hidden = false;
  }
  // Every API error has the one shape {"error": {"code", "message"}}: show its message as written.
  async function api(method, url, body) {
    $("error").hidden = true;
    let resp;
    try {
      resp = await fetch(url, {
        method: method,
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: body === undefined ? undefined : JSON.stringify(body),
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
  return { $: $, page: json("page"), words: json("words"), showError: showError, notice: notice, api: api };
})();
