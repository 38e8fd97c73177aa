// Operator login: sends the id and PIN as JSON, then opens the terminal; errors in the page's language.
"use strict";
(function () {
  const W = JSON.parse(document.getElementById("words").textContent);
  const S = JSON.parse(document.getElementById("settings").textContent);
  const $ = (id) => document.getElementById(id);
  const OPERATOR_KEY = "pg_operator";
  let busy = false;

  function showError(text) {
    $("error").textContent = text;
    $("error").hidden = false;
  }
  $("operator").value = localStorage.getItem(OPERATOR_KEY) || "";
  if ($("operator").value) $("pin").focus();
  $("login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    if (busy) return;
    busy = true;
    const operator = $("operator").value.trim();
    try {
      const resp = await fetch("/api/login", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ operator: operator, pin: $("pin").value }),
      });
      if (resp.ok) {
        localStorage.setItem(OPERATOR_KEY, operator);
        window.location.assign("/?lang=" + encodeURIComponent(S.lang));
        return;
      }
      let code = "";
      try { code = (await resp.json()).error.code; } catch (err) { /* not the error shape */ }
      const wait = Number(resp.headers.get("Retry-After") || 0);
      showError(code === "locked" ? W.locked.replace("{n}", String(wait)) : code === "wrong_pin" ? W.wrong_pin
        : W.error + ": HTTP " + resp.status);
      $("pin").value = "";
      $("pin").focus();
    } catch (err) {
      showError(W.connection_lost);
    } finally {
      busy = false;
    }
  });
})();
