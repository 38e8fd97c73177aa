// Daily report: a new date, site or line shows at once (the form still works without script).
"use strict";
(function () {
  const form = document.getElementById("report-form");
  ["date", "site", "line"].forEach((id) => {
    document.getElementById(id).addEventListener("change", () => form.requestSubmit());
  });
})();
