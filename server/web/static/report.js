// Report: a new date range, site or line shows at once (the form still works without script).
"use strict";
(function () {
  const form = document.getElementById("report-form");
  const from = document.getElementById("date");
  const to = document.getElementById("to");
  const MAX_DAYS = 92;
  let shown = from.value;
  const days = (a, b) => (Date.parse(b) - Date.parse(a)) / 86400000 + 1;
  ["date", "to", "site", "line"].forEach((id) => {
    document.getElementById(id).addEventListener("change", () => {
      // A single day moves as one; a range the server would refuse (end first, too long) becomes one day.
      if (from.value && (to.value === shown || !to.value || to.value < from.value ||
          days(from.value, to.value) > MAX_DAYS)) to.value = from.value;
      shown = from.value;
      to.min = from.value;
      form.requestSubmit();
    });
  });
})();
