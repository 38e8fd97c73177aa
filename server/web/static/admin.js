// Administration pages: forms and buttons call the API routes (which check everything again).
"use strict";
(function () {
  const { $, words: W, api } = window.pg;

  // ---- add forms: fields as JSON (empty ones left out), lists split at commas ----
  document.querySelectorAll("form[data-api]").forEach((form) => {
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const lists = (form.dataset.list || "").split(",").filter(Boolean);
      const body = {};
      Array.from(form.elements).forEach((el) => {
        if (!el.name || el.value.trim() === "") return;
        body[el.name] = lists.includes(el.name)
          ? el.value.split(",").map((s) => s.trim()).filter(Boolean)
          : el.value.trim();
      });
      const data = await api("POST", form.dataset.api, body);
      if (!data) return;
      if (form.dataset.token && data.token) {
        // The station's token is shown once: it is stored only as a hash.
        const box = $("station-token");
        box.textContent = W.admin_token_once + " " + data.token;
        box.hidden = false;
        return;
      }
      location.reload();
    });
  });

  // ---- row buttons: deactivate, revoke, withdraw ----
  document.querySelectorAll("button[data-post], button[data-patch]").forEach((btn) => {
    btn.addEventListener("click", async () => {
      if (btn.dataset.confirm && !window.confirm(W.admin_sure)) return;
      const data = btn.dataset.post
        ? await api("POST", btn.dataset.post)
        : await api("PATCH", btn.dataset.patch, { active: false });
      if (data) location.reload();
    });
  });

  // ---- cancelling a pull order, with a reason ----
  document.querySelectorAll(".cancel-form").forEach((f) => {
    f.addEventListener("submit", async (e) => {
      e.preventDefault();
      const data = await api("POST", "/api/v1/orders/" + f.dataset.order + "/cancel", {
        reason: f.elements.reason.value.trim(),
      });
      if (data) location.reload();
    });
  });
})();
