// Review desk hit page: X-ray tools, audited reveal, claim, decisions then the next item, pull orders.
"use strict";
(function () {
  const { $, page: P, words: W, showError, notice, api } = window.pg;

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
      // The full record stays on this page until the officer leaves it; nothing reloads it masked.
      $("revealed-note").hidden = false;
      $("reveal-form").hidden = true;
      document.body.dataset.revealed = "1";
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
    $("item-state").textContent = W["state_" + data.state] || data.state;
    notice((W["state_" + data.state] || data.state) + " · " + P.me);
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
      const detail = form.elements.legal_basis_detail.value.trim();
      if ("legal_basis" in fields && detail) fields.legal_basis_detail = detail;
      if (!(await claim())) return;
      const body = { action: chosen.value, fields: fields, add_to_gallery: $("f-gallery").checked };
      const data = await api("POST", "/api/v1/reviews/" + P.id + "/decision", body);
      // Decided: on to the item that followed this one in the queue.
      if (!data) return;
      const next = await api("GET", "/api/v1/reviews/next?after=" + P.id + "&stage=" + P.stage);
      // The queue when nothing is left; the queue too (without "done") when the question failed.
      location.assign(next === null ? "/desk" : next.id ? "/desk/items/" + next.id : "/desk?done=1");
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
    // Reloading would mask a revealed record again: say it is done instead.
    if (data) notice(W.desk_order_sent + " " + data.order_id);
  });

  // ---- cancelling a live pull order (who and why are kept and audited) ----
  document.querySelectorAll(".cancel-form").forEach((f) => {
    f.addEventListener("submit", async (e) => {
      e.preventDefault();
      const reason = f.elements.reason.value.trim();
      const data = await api("POST", "/api/v1/orders/" + f.dataset.order + "/cancel", { reason: reason });
      if (!data) return;
      f.closest("td").textContent = W.desk_cancelled + " · " + data.cancelled_by + ": " + data.cancel_reason;
    });
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
