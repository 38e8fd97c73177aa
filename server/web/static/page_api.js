// What the desk's page scripts share: their data and words (base.html), messages, and the API helper
// of api.js (CSRF, errors in the page's words).
"use strict";
window.pg = (function () {
  const $ = (id) => document.getElementById(id);
  const json = (id) => ($(id) ? JSON.parse($(id).textContent) : {});

  function notice(message) {
    const box = $("notice");
    box.textContent = message;
    box.hidden = false;
  }
  const { call, showError } = window.pgApi;
  return { $: $, page: json("page"), words: json("words"), showError: showError, notice: notice, api: call };
})();
