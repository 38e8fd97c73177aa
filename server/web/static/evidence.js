// Evidence card (hit and case pages): download a signed bundle, create the referral package, record the reply.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const csrf = document.querySelector('meta[name="csrf-token"]').content;

  // The bundle comes back as bytes, so this one call is made here; JSON calls go through pgApi (api.js).
  async function postForBytes(url, body) {
    $("error").hidden = true;
    let resp;
    try {
      resp = await fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify(body),
      });
    } catch (e) {
      window.pgApi.showError(String(e));
      return null;
    }
    if (resp.ok) return resp;
    let data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    window.pgApi.showError(data && data.error ? data.error.message + " (" + data.error.code + ")" : "HTTP " + resp.status);
    return null;
  }

  const exportButton = $("export-bundle");
  if (exportButton) {
    exportButton.addEventListener("click", async () => {
      exportButton.disabled = true;
      const resp = await postForBytes("/api/v1/evidence/bundles", JSON.parse(exportButton.dataset.target));
      exportButton.disabled = false;
      if (!resp) return;
      const name = (/filename="([^"]+)"/.exec(resp.headers.get("Content-Disposition") || "") || [])[1] || "evidence.zip";
      const link = document.createElement("a");
      link.href = URL.createObjectURL(await resp.blob());
      link.download = name;
      document.body.appendChild(link);
      link.click();
      link.remove();
      $("bundle-fingerprint").textContent = resp.headers.get("X-Bundle-Fingerprint") || "";
      $("bundle-done").hidden = false;
    });
  }

  const referral = $("referral-form");
  if (referral) {
    referral.addEventListener("submit", async (e) => {
      e.preventDefault();
      const body = Object.assign(JSON.parse(referral.dataset.target), { legal_basis: $("referral-basis").value.trim() });
      if (await window.pgApi.call("POST", "/api/v1/referrals", body)) window.location.reload();
    });
  }

  document.querySelectorAll(".reply-form").forEach((form) => {
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const body = {};
      new FormData(form).forEach((value, key) => { if (String(value).trim()) body[key] = String(value).trim(); });
      const url = "/api/v1/referrals/" + form.dataset.referral + "/reply";
      if (await window.pgApi.call("POST", url, body)) window.location.reload();
    });
  });
})();
