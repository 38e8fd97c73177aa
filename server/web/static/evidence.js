// Hit page evidence card: download a signed bundle, create a referral package, record the authority's reply.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const csrf = document.querySelector('meta[name="csrf-token"]').content;

  // One POST for all three; an API error (one JSON shape) goes to the page's error region as written.
  async function post(url, body) {
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
      resp = null;
      $("error").textContent = String(e);
    }
    if (resp && resp.ok) return resp;
    if (resp) {
      let data = null;
      try { data = await resp.json(); } catch (e) { data = null; }
      $("error").textContent = data && data.error ? data.error.message + " (" + data.error.code + ")" : "HTTP " + resp.status;
    }
    $("error").hidden = false;
    $("error").scrollIntoView({ block: "nearest" });
    return null;
  }

  const exportButton = $("export-bundle");
  if (exportButton) {
    exportButton.addEventListener("click", async () => {
      exportButton.disabled = true;
      const resp = await post("/api/v1/evidence/bundles", { item_ids: [Number(exportButton.dataset.item)] });
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
      const body = { item_ids: [Number(referral.dataset.item)], legal_basis: $("referral-basis").value.trim() };
      if (await post("/api/v1/referrals", body)) window.location.reload();
    });
  }

  document.querySelectorAll(".reply-form").forEach((form) => {
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const body = {};
      new FormData(form).forEach((value, key) => { if (String(value).trim()) body[key] = String(value).trim(); });
      if (await post("/api/v1/referrals/" + form.dataset.referral + "/reply", body)) window.location.reload();
    });
  });
})();
