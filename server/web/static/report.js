// Report: a new date, end date, site or line shows at once (the form still works without script).
"use strict";
(function () {
  const form = document.getElementById("report-form");
  const from = document.getElementById("date");
  const to = document.getElementById("to");
  ["date", "to", "site", "line"].forEach((id) => {
    document.getElementById(id).addEventListener("change", () => {
      // A start after the end moves the end with it: one day, never a refused range.
      if (to.value && from.value && to.value < from.value) to.value = from.value;
      to.min = from.value;
      form.requestSubmit();
    });
  });
})();
