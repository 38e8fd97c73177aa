// Review desk hit page: X-ray tools, audited reveal, claim, decisions with required fields, pull orders.
"use strict";
(function () {
  const P = JSON.parse(document.getElementById("page").textContent);
  const $ = (id) => document.getElementById(id);
  const { call: api, showError } = window.pgApi;
  function notice(message) {
    const box = $("notice");
    box.textContent = message;
    box.hidden = false;
  }

  // ---- X-ray viewer: zoom, contrast, invert (CSS filters on the served image) ----
  const xray = $("xray");
  function applyView() {
    if (!xray) return;
    const inv = $("invert").checked ? " invert(1)" : "";
    xray.style.filter = "contrast(" + $("contrast").value + ")" + inv;
    xray.style.transform = "scale(" + $("zoom").value + ")";
  }
  ["zoom", "contrast", "invert"].forEach((id) => $(id) && $(id).addEventListener("input", applyView));

  // ---- reveal the sender's full record (officer, reason required, audited) ----
  const reveal = $("reveal-form");
  if (reveal) {
    reveal.addEventListener("submit", async (e) => {
      e.preventDefault();
      const reason = $("reveal-reason").value.trim();
      const data = await api("POST", "/api/v1/senders/" + P.sender_token + "/reveal", { reason: reason });
      if (!data) return;
      $("sender-id").textContent = data.id_number || data.id_masked;
      $("sender-name").textContent = data.name || data.name_masked;
      $("sender-phone").textContent = data.phone || data.phone_masked;
      $("revealed-note").hidden = false;
      setTimeout(() => location.reload(), 1500);
    });
  }

  // ---- decisions ----
  const form = $("decision-form");
  function showFields() {
    const chosen = form.querySelector('input[name="action"]:checked');
    const need = chosen ? P.required[chosen.value] || [] : [];
    form.querySelectorAll(".field").forEach((f) => {
      const name = f.dataset.field;
      const show = need.includes(name) || (name === "gallery" && chosen && ["detain", "seize"].includes(chosen.value));
      f.hidden = !show;
      const input = f.querySelector("input:not([type=checkbox]), select");
      if (input) input.required = show;
    });
  }
  async function claim() {
    if (P.claimed_by === P.me) return true;
    const data = await api("POST", "/api/v1/reviews/" + P.id + "/claim");
    if (!data) return false;
    P.claimed_by = P.me;
    $("item-state").textContent = data.state;
    notice(data.state + " · " + P.me);
    return true;
  }
  if (form) {
    form.querySelectorAll('input[name="action"]').forEach((r) => r.addEventListener("change", showFields));
    if ($("claim")) $("claim").addEventListener("click", claim);
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const chosen = form.querySelector('input[name="action"]:checked');
      if (!chosen) return;
      const fields = {};
      (P.required[chosen.value] || []).forEach((name) => { fields[name] = form.elements[name].value.trim(); });
      if (!(await claim())) return;
      const body = { action: chosen.value, fields: fields, add_to_gallery: $("f-gallery").checked };
      const data = await api("POST", "/api/v1/reviews/" + P.id + "/decision", body);
      if (data) location.reload();
    });
  }

  // ---- pull orders for the waybill or the sender ----
  const order = $("order-form");
  order.addEventListener("submit", async (e) => {
    e.preventDefault();
    const scope = e.submitter ? e.submitter.value : "waybill";
    const body = { scope: scope, reason: $("order-reason").value.trim(), site_id: P.site_id };
    if (scope === "waybill") body.waybill = P.waybill;
    else body.sender_token = P.sender_token;
    const data = await api("POST", "/api/v1/orders", body);
    if (data) location.reload();
  });

  // ---- keyboard ----
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const t = e.target;
    const typing = t instanceof HTMLInputElement && !["radio", "checkbox", "range"].includes(t.type);
    if (typing || t instanceof HTMLSelectElement || t instanceof HTMLTextAreaElement) {
      if (e.key === "Escape") t.blur();
      return;
    }
    const k = e.key.toUpperCase();
    if (k === "C" && $("claim")) { e.preventDefault(); claim(); return; }
    if (k === "V" && $("reveal-reason")) { e.preventDefault(); $("reveal-reason").focus(); return; }
    if (form) {
      const radio = form.querySelector('input[name="action"][data-key="' + k + '"]');
      if (radio) {
        e.preventDefault();
        radio.checked = true;
        showFields();
        const first = form.querySelector(".field:not([hidden]) input, .field:not([hidden]) select");
        (first || radio).focus();
      }
    }
  });
})();
