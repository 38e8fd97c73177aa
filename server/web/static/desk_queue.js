// Review queue: the live signal (server-sent events) with a badge and a tone for new PULLs, bulk release.
"use strict";
(function () {
  const P = JSON.parse(document.getElementById("page").textContent);
  const W = JSON.parse(document.getElementById("words").textContent);
  const $ = (id) => document.getElementById(id);
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const known = P.signal.newest_pull;

  function showError(message) {
    const box = $("error");
    box.textContent = message;
    box.hidden = false;
    box.scrollIntoView({ block: "nearest" });
  }

  // ---- a short two-note tone: browsers allow it once the officer has used the page ----
  let audio = null;
  function tone() {
    document.body.dataset.alerts = String(Number(document.body.dataset.alerts || 0) + 1);
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      if (audio.state === "suspended") audio.resume();
      [880, 660].forEach((hz, n) => {
        const osc = audio.createOscillator();
        const gain = audio.createGain();
        osc.frequency.value = hz;
        gain.gain.value = 0.15;
        osc.connect(gain).connect(audio.destination);
        osc.start(audio.currentTime + n * 0.18);
        osc.stop(audio.currentTime + n * 0.18 + 0.15);
      });
    } catch (e) {
      // No audio device: the badge still shows.
    }
  }

  // ---- the live queue: counts update in place, new PULLs raise the badge ----
  function live(state) {
    const el = $("live-state");
    el.dataset.state = state;
    el.textContent = state === "on" ? W.desk_live_on : W.desk_live_off;
  }
  let alerted = known;
  if (window.EventSource) {
    const site = new URLSearchParams(location.search).get("site") || "";
    const source = new EventSource("/desk/stream?since=" + known + "&site=" + encodeURIComponent(site));
    source.addEventListener("open", () => live("on"));
    source.addEventListener("error", () => live("off"));
    source.addEventListener("logout", () => { source.close(); location.reload(); });
    source.addEventListener("queue", (e) => {
      live("on");
      const s = JSON.parse(e.data);
      if (s.newest_pull > alerted && s.new_pulls > 0) {
        // Only PULLs that arrived since the page was drawn count as new.
        alerted = s.newest_pull;
        const fresh = s.new_pulls;
        $("live-count").textContent = String(fresh);
        $("live-badge").hidden = false;
        document.title = "(" + fresh + ") " + document.title.replace(/^\(\d+\) /, "");
        tone();
      }
      $("queue-counts").dataset.items = String(s.items);
      $("queue-counts").dataset.pulls = String(s.pulls);
    });
    window.addEventListener("pagehide", () => source.close());
  }

  // ---- bulk release of low-risk HOLDs, one reason for all ----
  const bulk = $("bulk-form");
  if (bulk && $("bulk-reason")) {
    bulk.addEventListener("submit", async (e) => {
      e.preventDefault();
      $("error").hidden = true;
      const ids = Array.from(bulk.querySelectorAll("input.pick:checked")).map((c) => Number(c.value));
      if (!ids.length) { showError(W.desk_bulk_none); return; }
      let resp;
      try {
        resp = await fetch("/api/v1/reviews/bulk-release", {
          method: "POST",
          credentials: "same-origin",
          headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
          body: JSON.stringify({ item_ids: ids, reason: $("bulk-reason").value.trim() }),
        });
      } catch (err) {
        showError(String(err));
        return;
      }
      let data = null;
      try { data = await resp.json(); } catch (err) { data = null; }
      if (!resp.ok) {
        showError(data && data.error ? data.error.message + " (" + data.error.code + ")" : "HTTP " + resp.status);
        return;
      }
      const note = $("notice");
      note.textContent = W.desk_bulk_done.replace("{n}", String(data.length));
      note.hidden = false;
      ids.forEach((id) => {
        const row = bulk.querySelector('tr[data-item="' + id + '"]');
        if (row) row.remove();
      });
    });
  }
})();
