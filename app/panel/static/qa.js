// Lianluo QA desk: the player's speed buttons (1x, 1.5x, 2x), both channels' waveform, and the
// marked spans (pauses, holds, long silences, overtalk) and the transfers (moments) drawn on a bar
// under it; clicking a mark or the waveform seeks there. A voicemail in the player has the speeds
// but no waveform. The page works without this.
"use strict";
(function () {
  const audio = document.getElementById("audio");
  const player = document.getElementById("player");
  if (!audio || !player) return;
  const rate = document.getElementById("rate");
  for (const button of document.querySelectorAll("#speeds button[data-rate]")) {
    button.addEventListener("click", () => {
      audio.playbackRate = Number(button.dataset.rate);
      rate.textContent = button.textContent;
      player.dataset.rate = button.dataset.rate;
    });
  }
  const timeline = document.getElementById("timeline");
  const duration = Number(player.dataset.duration) || 0;
  if (duration > 0) {
    for (const mark of document.querySelectorAll("#marks li")) {
      const start = Number(mark.dataset.start);
      const end = Number(mark.dataset.end);
      const bar = document.createElement("button");
      bar.type = "button";
      bar.className = "mark mark-" + mark.dataset.kind;
      if (mark.dataset.how) bar.dataset.how = mark.dataset.how;
      bar.title = mark.textContent;
      bar.style.left = (100 * start / duration) + "%";
      bar.style.width = Math.max(0.5, 100 * (end - start) / duration) + "%";
      bar.addEventListener("click", () => { audio.currentTime = start; });
      timeline.append(bar);
    }
  }
  // The waveform: the caller's level above the middle line, the center's below.
  const canvas = document.getElementById("waveform");
  if (canvas && canvas.getContext && player.dataset.recordingId) {
    fetch("/panel/api/recordings/" + encodeURIComponent(player.dataset.recordingId) + "/waveform", {
      credentials: "same-origin",
      headers: { "Accept": "application/json" },
    })
      .then((r) => (r.ok ? r.json() : null))
      .then((w) => {
        if (!w || !w.caller) return;
        const ctx = canvas.getContext("2d");
        const mid = canvas.height / 2;
        const n = Math.max(w.caller.length, 1);
        const step = canvas.width / n;
        const peak = Math.max(0.05, ...w.caller, ...w.center);
        ctx.fillStyle = "#2c3e50";
        w.caller.forEach((v, i) => { const h = (v / peak) * (mid - 2); ctx.fillRect(i * step, mid - h, Math.max(1, step), h); });
        ctx.fillStyle = "#16a085";
        w.center.forEach((v, i) => { const h = (v / peak) * (mid - 2); ctx.fillRect(i * step, mid, Math.max(1, step), h); });
        player.dataset.waveform = "drawn";
      })
      .catch(() => {});
    canvas.addEventListener("click", (ev) => {
      const rect = canvas.getBoundingClientRect();
      if (duration > 0) audio.currentTime = duration * (ev.clientX - rect.left) / rect.width;
    });
  }
  // The transcript: a click on a line seeks to its start; the line being heard is outlined.
  const lines = Array.from(document.querySelectorAll("#transcript-lines li[data-start]"));
  for (const line of lines) {
    line.addEventListener("click", () => {
      audio.currentTime = Number(line.dataset.start);
      player.dataset.seekedTo = line.dataset.start;
    });
  }
  if (lines.length) {
    audio.addEventListener("timeupdate", () => {
      const t = audio.currentTime;
      for (const line of lines) {
        line.classList.toggle("now", t >= Number(line.dataset.start) && t < Number(line.dataset.end));
      }
    });
  }
})();
