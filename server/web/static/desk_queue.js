// Review queue: the live signal (server-sent events) with a badge and a tone for new PULLs, bulk release.
"use strict";
(function () {
  const { $, page: P, words: W, showError, notice, api } = window.pg;
  const known = P.signal.newest_pull;

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
      const ids = Array.from(bulk.querySelectorAll("input.pick:checked")).map((c) => Number(c.value));
      if (!ids.length) { showError(W.desk_bulk_none); return; }
      const body = { item_ids: ids, reason: $("bulk-reason").value.trim() };
      const data = await api("POST", "/api/v1/reviews/bulk-release", body);
      if (!data) return;
      notice(W.desk_bulk_done.replace("{n}", String(data.length)));
      ids.forEach((id) => {
        const row = bulk.querySelector('tr[data-item="' + id + '"]');
        if (row) row.remove();
      });
    });
  }
})();
