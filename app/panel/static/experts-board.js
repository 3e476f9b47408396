// Lianluo supervisor page: the experts' live state (issue 13). Asks GET /panel/api/experts when
// an agent's state changes (panel.js re-sends the websocket's messages as "lianluo:message"; an
// expert with a panel is an agent) and every 5 s (an outside expert's state changes over the
// API only). Text only, never HTML.
"use strict";
(function () {
  const dataNode = document.getElementById("experts-board-data");
  const table = document.getElementById("experts");
  if (!dataNode || !table) return;
  const text = JSON.parse(dataNode.textContent).text;
  let asking = false;

  function stateLabel(e) {
    const label = text["state." + e.state] || e.state;
    return e.reason ? label + " (" + e.reason + ")" : label;
  }
  async function refresh() {
    if (asking) return;
    asking = true;
    try {
      const resp = await fetch("/panel/api/experts", { credentials: "same-origin", cache: "no-store" });
      if (!resp.ok) return;
      const body = await resp.json();
      body.experts.forEach((e) => {
        const row = table.querySelector('tr[data-expert-id="' + CSS.escape(e.id) + '"]');
        if (!row) return;
        const state = row.querySelector('[data-field="state"]');
        state.textContent = stateLabel(e);
        state.dataset.state = e.state;
        row.querySelector('[data-field="calls"]').textContent = String(e.calls);
        row.querySelector('[data-field="available"]').textContent = text[e.available ? "yes" : "no"];
      });
    } catch (err) {
      // the next message or tick asks again
    } finally {
      asking = false;
    }
  }
  document.addEventListener("lianluo:message", (ev) => {
    const msg = ev.detail || {};
    if (msg.type === "agent" || msg.type === "snapshot") refresh();
  });
  setInterval(refresh, 5000);
})();
