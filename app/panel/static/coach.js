// Lianluo supervisor page: live calls with Listen / Whisper / Barge (app/supervision/coaching.py).
// Asks GET /panel/api/supervision/calls every 2 s and after each button; text only, never HTML.
"use strict";
(function () {
  const dataNode = document.getElementById("coach-data");
  const table = document.getElementById("live-calls");
  if (!dataNode || !table) return;
  const text = JSON.parse(dataNode.textContent).text;
  const status = document.getElementById("coach-status");
  const endButton = document.getElementById("coach-end");
  const empty = document.getElementById("no-live-calls");
  const csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  let asking = false;

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, (_, k) => (k in values ? String(values[k]) : ""));
  }
  async function post(path) {
    const resp = await fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRF-Token": csrf },
    });
    if (!resp.ok) {
      const body = await resp.json().catch(() => ({}));
      status.textContent = fill(text.failed, { message: body.message || resp.status });
      return;
    }
    refresh();
  }
  function cell(row, value) {
    const td = document.createElement("td");
    td.textContent = value == null ? "" : String(value);
    row.appendChild(td);
    return td;
  }
  function show(body) {
    const mine = body.mine;
    if (!mine) status.textContent = text["mine.none"];
    else {
      // Ringing: the button's name; connected: what the mode in effect means for who hears whom.
      const connected = mine.state === "connected";
      // Barge on a caller nobody answered yet reaches the caller alone.
      const onCaller = mine.side === "caller" && text["mode." + mine.hearing + ".caller"];
      const mode = connected ? onCaller || text["mode." + mine.hearing] : text[mine.mode];
      const key = connected ? "mine.connected" : "mine.ringing";
      status.textContent = fill(text[key], { call: mine.interaction_id.slice(0, 8), mode: mode });
    }
    endButton.hidden = !mine;
    const tbody = table.querySelector("tbody");
    tbody.replaceChildren();
    empty.hidden = body.calls.length > 0;
    body.calls.forEach((c) => {
      const row = document.createElement("tr");
      row.dataset.interactionId = c.interaction_id;
      cell(row, c.ani);
      // No agent yet: where the caller is instead (in the IVR, waiting in line).
      cell(row, c.agent_id != null ? c.agent_id : text["stage." + c.stage] || "");
      cell(row, c.kind);
      cell(row, c.queue);
      cell(row, c.supervisors.join(", "));
      const actions = cell(row, "");
      ["listen", "whisper", "barge"].forEach((mode) => {
        const b = document.createElement("button");
        b.type = "button";
        b.textContent = text[mode];
        b.dataset.mode = mode;
        b.style.marginRight = "0.3em";
        const current = mine && mine.interaction_id === c.interaction_id && mine.mode === mode;
        const offered = !c.modes || c.modes.includes(mode); // whisper needs an agent on the call
        if (!offered) b.title = text.no_whisper;
        b.disabled = Boolean(!offered || current || (mine && mine.interaction_id !== c.interaction_id));
        b.addEventListener("click", () =>
          post("/panel/api/supervision/calls/" + encodeURIComponent(c.interaction_id) + "/" + mode),
        );
        actions.appendChild(b);
      });
      tbody.appendChild(row);
    });
  }
  async function refresh() {
    if (asking) return;
    asking = true;
    try {
      const resp = await fetch("/panel/api/supervision/calls", { credentials: "same-origin", cache: "no-store" });
      if (resp.ok) show(await resp.json());
    } catch (err) {
      // the next tick asks again
    } finally {
      asking = false;
    }
  }
  endButton.addEventListener("click", () => post("/panel/api/supervision/end"));
  refresh();
  setInterval(refresh, 2000);
})();
