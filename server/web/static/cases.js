// Desk case pages: open a case from items or add them to one, and work a case through its steps.
"use strict";
(function () {
  const P = JSON.parse(document.getElementById("page").textContent);
  const $ = (id) => document.getElementById(id);
  const { call, showError } = window.pgApi;
  function on(id, handler) {
    const form = $(id);
    if (form) form.addEventListener("submit", (e) => { e.preventDefault(); handler(form); });
  }
  const base = "/api/v1/cases/" + P.id;
  const reload = (data) => { if (data) location.reload(); };

  // ---- the list: open a case from the chosen items, or add them to an open one ----
  on("new-case-form", async (f) => {
    const data = await call("POST", "/api/v1/cases", { title: f.elements.title.value.trim(), items: P.items });
    if (data) location.href = "/desk/cases/" + data.id;
  });
  on("add-case-form", async (f) => {
    const id = f.elements["case"].value;
    const data = await call("POST", "/api/v1/cases/" + id + "/items", { items: P.items });
    if (data) location.href = "/desk/cases/" + id;
  });

  // ---- one case ----
  on("holder-form", async (f) => {
    reload(await call("POST", base + "/rights-holder", { rights_holder_id: Number(f.elements.holder.value) }));
  });
  on("new-holder-form", async (f) => {
    const e = f.elements;
    const body = { brand: e.brand.value.trim(), contact_name: e.contact_name.value.trim(), language: e.language.value };
    if (e.email.value.trim()) body.email = e.email.value.trim();
    if (e.tm_number.value.trim()) {
      body.trademarks = [{ number: e.tm_number.value.trim(), mark: e.tm_mark.value.trim() || body.brand }];
    }
    const holder = await call("POST", "/api/v1/rights-holders", body);
    if (holder) reload(await call("POST", base + "/rights-holder", { rights_holder_id: holder.id }));
  });
  document.querySelectorAll("form.step").forEach((form) => {
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const fields = {};
      form.querySelectorAll("input, select").forEach((el) => { fields[el.name] = el.value.trim(); });
      reload(await call("POST", base + "/steps", { action: form.dataset.action, fields: fields }));
    });
  });
  if ($("notify")) {
    $("notify").addEventListener("click", async () => {
      const data = await call("POST", base + "/notify");
      if (data && data.error) showError(data.error);
      else reload(data);
    });
  }
  on("owner-form", async (f) => {
    reload(await call("POST", base + "/owner", { owner: f.elements.owner.value.trim() }));
  });
  on("delivered-form", async (f) => {
    const raw = f.elements.delivered_at.value;
    // The browser's local time, sent with its offset: the server keeps times in UTC.
    const body = raw ? { delivered_at: new Date(raw).toISOString() } : {};
    reload(await call("POST", base + "/delivered", body));
  });
  on("reply-form", async (f) => {
    const chosen = f.querySelector('input[name="reply"]:checked');
    if (!chosen) return;
    reload(await call("POST", base + "/reply", { reply: chosen.value, note: f.elements.note.value.trim() }));
  });
  on("sample-form", async (f) => {
    const e = f.elements;
    reload(await call("POST", base + "/samples", {
      review_id: Number(e.review_id.value), description: e.description.value.trim(), quantity: Number(e.quantity.value),
      released_to: e.released_to.value.trim(), receipt_reference: e.receipt_reference.value.trim(),
    }));
  });
  on("disposal-form", async (f) => {
    const e = f.elements;
    const photos = [];
    const file = e.photo.files[0];
    if (file) {
      const stored = await call("POST", base + "/photos", await file.arrayBuffer(), file.type || "image/jpeg");
      if (!stored) return;
      photos.push(stored.sha256);
    }
    reload(await call("POST", base + "/disposals", {
      review_id: Number(e.review_id.value), method: e.method.value, place: e.place.value.trim(),
      done_on: e.done_on.value, witnesses: e.witnesses.value.split(",").map((w) => w.trim()).filter(Boolean),
      photos: photos, certificate_ref: e.certificate_ref.value.trim(),
    }));
  });
})();
