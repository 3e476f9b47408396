// Lianluo panel: enhances the server-rendered pages. The forms work without this file;
// with it, state changes go through the JSON API without a reload and the page follows
// live changes pushed over /ws.
"use strict";
(function () {
  const dataNode = document.getElementById("panel-data");
  if (!dataNode) return;
  const data = JSON.parse(dataNode.textContent);
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.content : "";
  const page = document.body.dataset.page;
  // Set when this page navigates away on purpose, so a socket closing meanwhile is no news.
  let leaving = false;
  window.addEventListener("pagehide", () => { leaving = true; });
  const signOut = document.querySelector('form[action="/logout"]');
  if (signOut) signOut.addEventListener("submit", () => { leaving = true; });

  function stateLabel(state) { return data.states[state] || state; }
  function reasonLabel(code) { return code ? (data.reasons[code] || code) : ""; }
  function timeOf(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return d.toLocaleTimeString(data.lang === "zh" ? "zh-CN" : "en-GB");
  }
  function timeNode(iso) {
    const t = document.createElement("time");
    t.dateTime = iso;
    t.textContent = timeOf(iso);
    return t;
  }
  function setLive(on) {
    const live = document.getElementById("live");
    if (!live) return;
    live.dataset.live = on ? "true" : "false";
    live.textContent = on ? data.text.live : data.text.offline;
  }
  function showMessage(text) {
    const m = document.getElementById("message");
    if (m) m.textContent = text || "";
  }

  // -- the agent's own page ------------------------------------------------------------------
  function showAgent(agent) {
    const box = document.getElementById("agent");
    if (!box || box.dataset.agentId !== agent.id) return;
    const state = document.getElementById("state");
    state.textContent = stateLabel(agent.state);
    state.className = "state state-" + agent.state;
    state.dataset.state = agent.state;
    const detail = document.getElementById("state-detail");
    detail.textContent = "";
    if (agent.state === "not_ready" && agent.not_ready_reason) {
      detail.append(reasonLabel(agent.not_ready_reason));
    }
    if (agent.state_since) {
      const [before, after] = data.text.since.split("{time}");
      if (detail.textContent) detail.append(" · ");
      detail.append(before, timeNode(agent.state_since), after || "");
    }
    // Only the buttons that mean something in this state (the server's `controls` decide).
    const controls = new Set(agent.controls || []);
    const toggle = (id, on) => { const node = document.getElementById(id); if (node) node.hidden = !on; };
    toggle("ready", controls.has("ready"));
    toggle("stay-ready", controls.has("stay_ready_after_call"));
    toggle("not-ready", controls.has("not_ready"));
    toggle("not-ready-after", controls.has("not_ready_after_call"));
    toggle("reason-label", controls.has("not_ready") || controls.has("not_ready_after_call"));
    toggle("decline", controls.has("decline"));
    const decline = document.getElementById("decline");
    if (decline) decline.dataset.interactionId = agent.interaction_id || "";
    const after = document.getElementById("after-call");
    if (after) {
      after.hidden = !agent.not_ready_next;
      after.textContent = agent.not_ready_next
        ? data.text.after_call_note.replace("{reason}", reasonLabel(agent.not_ready_next)) : "";
    }
    stateStart = typeof agent.state_for_s === "number" ? Date.now() - agent.state_for_s * 1000 : null;
    tickState();
    const phone = document.getElementById("phone");
    phone.dataset.registered = agent.device_registered ? "true" : "false";
    phone.textContent = agent.device_registered ? data.text.phone_registered : data.text.phone_not_registered;
    const line = document.getElementById("outbound-line");
    if (line) {
      line.dataset.line = agent.outbound_line || "";
      line.hidden = !agent.outbound_line;
      line.textContent = agent.outbound_line ? data.lines[agent.outbound_line] || agent.outbound_line : "";
    }
  }

  // The state timer: how long the agent has been in this state, counted in the page.
  let stateStart = null;
  function clock(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60), ss = s % 60;
    const two = (n) => String(n).padStart(2, "0");
    return (hh ? hh + ":" + two(mm) : String(mm)) + ":" + two(ss);
  }
  window.lianluoClock = clock; // calls.js counts the call's time the same way
  function tickState() {
    const timer = document.getElementById("state-timer");
    if (!timer) return;
    timer.textContent = stateStart === null ? "" : clock((Date.now() - stateStart) / 1000);
  }

  async function decline(button) {
    const id = button.dataset.interactionId;
    if (!id) return;
    button.disabled = true;
    try {
      const resp = await fetch("/panel/api/offers/" + encodeURIComponent(id) + "/decline", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Accept": "application/json", "X-CSRF-Token": csrf },
      });
      const answer = await resp.json().catch(() => ({}));
      if (resp.status === 401) { window.location.assign("/login?expired=1"); return; }
      // The new state follows over the socket once the phone has stopped ringing.
      showMessage(resp.ok ? "" : data.text.error.replace("{message}", answer.message || resp.status));
    } catch (err) {
      showMessage(data.text.error.replace("{message}", String(err)));
    } finally {
      button.disabled = false;
    }
  }

  async function postState(form) {
    const box = document.getElementById("agent");
    const fields = new FormData(form);
    const body = { state: fields.get("state") };
    if (fields.get("reason")) body.reason = fields.get("reason");
    const buttons = document.querySelectorAll(".actions button");
    buttons.forEach((b) => { b.disabled = true; });
    try {
      const resp = await fetch("/panel/api/agents/" + encodeURIComponent(box.dataset.agentId) + "/state", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify(body),
      });
      const answer = await resp.json().catch(() => ({}));
      if (resp.status === 401) { window.location.assign("/login?expired=1"); return; }
      if (!resp.ok) { showMessage(data.text.error.replace("{message}", answer.message || resp.status)); return; }
      showMessage("");
      showAgent(answer);
      document.dispatchEvent(new CustomEvent("lianluo:message", { detail: { type: "agent", agent: answer } }));
    } catch (err) {
      showMessage(data.text.error.replace("{message}", String(err)));
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  }

  if (page === "agent") {
    document.querySelectorAll("form.state-form").forEach((form) => {
      form.addEventListener("submit", (ev) => { ev.preventDefault(); postState(form); });
    });
    const declineButton = document.getElementById("decline");
    if (declineButton) declineButton.addEventListener("click", () => decline(declineButton));
    setInterval(tickState, 500);
  }

  // -- the supervisor's table ----------------------------------------------------------------
  function showRow(agent) {
    const row = document.querySelector('#agents tr[data-agent-id="' + CSS.escape(agent.id) + '"]');
    if (!row) return;
    const cell = row.querySelector('[data-field="state"]');
    cell.className = "state state-" + agent.state;
    cell.textContent = stateLabel(agent.state) + " ";
    if (agent.state_since) cell.append(timeNode(agent.state_since));
    row.querySelector('[data-field="reason"]').textContent =
      agent.state === "not_ready" ? reasonLabel(agent.not_ready_reason) : "";
    row.querySelector('[data-field="phone"]').textContent = agent.device_registered ? data.text.yes : data.text.no;
    row.querySelector('[data-field="skills"]').textContent =
      Object.entries(agent.skills).map(([k, v]) => ((data.skills && data.skills[k]) || k) + " " + v).join(", ");
  }
  const show = page === "supervisor" ? showRow : page === "agent" ? showAgent : () => {};

  // -- the wallboard ----------------------------------------------------------------------------
  function pct(x) { return x === null || x === undefined ? "–" : x.toFixed(1) + "%"; }
  function secs(x) { return x === null || x === undefined ? "–" : Math.round(x) + " s"; }
  function showBoard(board) {
    const table = document.getElementById("wallboard");
    if (!table) return;
    const body = table.querySelector("tbody");
    body.replaceChildren(...Object.entries(board.queues).map(([name, q]) => {
      const today = q.today || {}, recent = q.last_30_min || {};
      const cells = {
        waiting: String(q.waiting), longest: secs(q.longest_wait_s),
        sl_today: pct(today.service_level_percent), sl_30: pct(recent.service_level_percent),
        asa: secs(today.asa_s), offered: String(today.offered || 0), answered: String(today.answered || 0),
        abandoned: String((today.abandoned || 0) - (today.short_abandoned || 0)),
        short: String(today.short_abandoned || 0), ready: q.agents_ready + " / " + q.agents_logged_in,
        callbacks: String(q.callbacks_pending || 0), voicemails: String(q.voicemails_new || 0),
      };
      const row = document.createElement("tr");
      row.dataset.queue = name;
      const th = document.createElement("th");
      th.textContent = name;
      row.append(th);
      data.columns.forEach((c) => {
        const td = document.createElement("td");
        td.dataset.field = c;
        td.textContent = cells[c];
        row.append(td);
      });
      // Amber ("warn") or red ("bad"): the server decides, by the configured thresholds.
      row.className = q.tile || "";
      return row;
    }));
    const campaigns = document.getElementById("campaigns");
    campaigns.replaceChildren(...(board.campaigns || []).map((c) => {
      const li = document.createElement("li");
      li.dataset.campaign = c.name;
      li.className = c.abandon_rate_24h_pct > c.abandon_target_pct ? "bad" : "";
      li.textContent = c.name + ": " + c.abandon_rate_24h_pct.toFixed(1) + "% / "
        + c.abandon_rate_30d_pct.toFixed(1) + "% (" + c.abandon_target_pct + "%)";
      return li;
    }));
    const states = document.getElementById("agent-states");
    states.replaceChildren(...Object.entries(board.agents).filter(([, n]) => n > 0).map(([state, n]) => {
      const li = document.createElement("li");
      li.dataset.state = state;
      li.textContent = stateLabel(state) + ": " + n;
      return li;
    }));
    // Each agent, with the time in state counted here from `since`; the server's `at` says how far
    // this browser's clock is from the server's, so a wrong clock does not show a wrong time.
    boardSkew = Date.parse(board.at) ? Date.now() - Date.parse(board.at) : 0;
    const agents = document.querySelector("#wallboard-agents tbody");
    if (agents) {
      agents.replaceChildren(...(board.agent_list || []).map((a) => {
        const row = document.createElement("tr");
        row.dataset.agentId = a.id;
        row.dataset.state = a.state;
        const cell = (field, text) => {
          const td = document.createElement("td");
          td.dataset.field = field;
          td.textContent = text;
          row.append(td);
          return td;
        };
        cell("name", a.name);
        cell("state", stateLabel(a.state)).className = "state state-" + a.state;
        const time = cell("time", "");
        if (a.since) time.dataset.since = a.since;
        cell("reason", a.state === "not_ready" ? reasonLabel(a.not_ready_reason) : "");
        return row;
      }));
    }
    tickBoard();
  }
  let boardSkew = 0;
  function tickBoard() {
    document.querySelectorAll("#wallboard-agents td[data-since]").forEach((td) => {
      td.textContent = clock((Date.now() - boardSkew - Date.parse(td.dataset.since)) / 1000);
    });
  }
  if (page === "wallboard") {
    showBoard(data.board);
    setInterval(tickBoard, 500);
  }

  // -- the interval report's chart (Chart.js, loaded after this script: wait for it) ---------------
  function drawReport() {
    const canvas = document.getElementById("report-chart");
    if (!canvas || !window.Chart || !data.report.rows.length) return;
    const starts = [...new Set(data.report.rows.map((r) => r.start))];
    const sum = (key) => starts.map((s) => data.report.rows.filter((r) => r.start === s)
      .reduce((n, r) => n + (r[key] || 0), 0));
    const answered = sum("answered"), inTarget = sum("answered_in_target");
    const counted = starts.map((_, i) => answered[i] + sum("abandoned")[i] - sum("short_abandoned")[i]);
    new window.Chart(canvas, {
      data: {
        labels: starts.map(timeOf),
        datasets: [
          { type: "bar", label: data.labels.offered, data: sum("offered"), yAxisID: "calls" },
          { type: "bar", label: data.labels.answered, data: answered, yAxisID: "calls" },
          { type: "bar", label: data.labels.abandoned, data: sum("abandoned"), yAxisID: "calls" },
          { type: "line", label: data.labels.service_level_percent, yAxisID: "pct",
            data: counted.map((c, i) => (c ? (100 * inTarget[i]) / c : null)) },
        ],
      },
      options: {
        animation: false,
        scales: { calls: { position: "left", beginAtZero: true, ticks: { precision: 0 } },
                  pct: { position: "right", min: 0, max: 100 } },
      },
    });
    canvas.dataset.drawn = "true";
  }
  if (page === "reports") document.addEventListener("DOMContentLoaded", drawReport);

  // -- the other reports and staffing: one point per table row, as the page's data says ---------
  function drawRows(canvasId, rows) {
    const canvas = document.getElementById(canvasId);
    const chart = data.chart;
    if (!canvas || !window.Chart || !rows.length) return;
    // A time of the center's day reads as HH:MM there (the ISO text carries its own offset).
    const part = (v) => (typeof v === "string" && v.length > 16 && v[10] === "T" ? v.slice(11, 16) : v);
    let labels = rows.map((r) => chart.x.map((k) => part(r[k])).join(" "));
    let datasets = chart.bars.map((k) => ({ type: "bar", label: data.labels[k], yAxisID: "left",
      data: rows.map((r) => r[k]), stack: chart.stacked ? "all" : k }))
      .concat(chart.lines.map((k) => ({ type: "line", label: data.labels[k], yAxisID: "right",
        data: rows.map((r) => r[k]) })));
    if (chart.series) {
      // A trend: one point per period; the bars summed over the series, a line per series
      // (an agent, a queue), with a gap where it has no figure that period.
      labels = [...new Set(rows.map((r) => chart.x.map((k) => part(r[k])).join(" ")))].sort();
      const at = (r) => labels.indexOf(chart.x.map((k) => part(r[k])).join(" "));
      const names = [...new Set(rows.map((r) => r[chart.series]))].sort();
      datasets = chart.bars.map((k) => {
        const sums = labels.map(() => 0);
        rows.forEach((r) => { sums[at(r)] += r[k] || 0; });
        return { type: "bar", label: data.labels[k], yAxisID: "left", data: sums, order: 1 };
      }).concat(...chart.lines.map((k) => names.map((name) => {
        const points = labels.map(() => null);
        rows.filter((r) => r[chart.series] === name).forEach((r) => { points[at(r)] = r[k]; });
        return { type: "line", label: name + " " + data.labels[k], yAxisID: "right", data: points,
          spanGaps: true, order: 0 };  // drawn over the bars
      })));
    }
    const scales = { left: { position: "left", beginAtZero: true, stacked: !!chart.stacked } };
    if (chart.series) scales.left.ticks = { precision: 0 };  // counts: whole numbers
    if (chart.lines.length) {
      scales.right = { position: "right", beginAtZero: true,
        title: { display: true, text: chart.right_label } };
      if (chart.right === "percent" || chart.right === "score") scales.right.max = 100;
    }
    new window.Chart(canvas, { data: { labels, datasets },
      options: { animation: false, scales: { x: { stacked: !!chart.stacked }, ...scales } } });
    canvas.dataset.drawn = "true";
  }
  if (page === "report") {
    document.addEventListener("DOMContentLoaded", () => {
      drawRows("report-chart", data.report.rows);
      if (data.forecast) drawRows("forecast-chart", data.forecast.rows);
    });
  }

  // -- the supervisor's list of banned SIP sources -------------------------------------------
  function showBans(bans) {
    const table = document.getElementById("sip-bans-table");
    if (!table) return;
    const body = table.querySelector("tbody");
    body.replaceChildren(...bans.map((b) => {
      const row = document.createElement("tr");
      row.dataset.address = b.address;
      const cell = (node) => { const td = document.createElement("td"); td.append(node); row.append(td); };
      cell(b.address);
      cell(timeNode(b.since));
      cell(timeNode(b.until));
      cell(String(b.failures));
      const lift = document.createElement("button");
      lift.type = "button";
      lift.className = "lift-ban";
      lift.dataset.address = b.address;
      lift.textContent = data.text["ban.lift"];
      cell(lift);
      return row;
    }));
    table.hidden = bans.length === 0;
    document.getElementById("sip-bans-none").hidden = bans.length !== 0;
  }
  document.addEventListener("click", async (ev) => {
    const button = ev.target.closest ? ev.target.closest("button.lift-ban") : null;
    if (!button) return;
    button.disabled = true;
    try {
      const resp = await fetch("/panel/api/security/bans/" + encodeURIComponent(button.dataset.address), {
        method: "DELETE",
        credentials: "same-origin",
        headers: { "Accept": "application/json", "X-CSRF-Token": csrf },
      });
      if (!resp.ok && resp.status !== 404) {
        const body = await resp.json().catch(() => ({}));
        showMessage(data.text.error.replace("{message}", body.message || resp.statusText));
        button.disabled = false;
      }
      // The list itself is updated by the live message that follows the change.
    } catch (err) {
      showMessage(data.text.error.replace("{message}", String(err)));
      button.disabled = false;
    }
  });
  document.querySelectorAll("time[datetime]").forEach((t) => { t.textContent = timeOf(t.dateTime); });

  // -- live updates ----------------------------------------------------------------------------
  let delay = 500;
  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    const ws = new WebSocket(scheme + window.location.host + "/ws");
    ws.addEventListener("open", () => { delay = 500; setLive(true); });
    ws.addEventListener("message", (ev) => {
      const msg = JSON.parse(ev.data);
      if (msg.type === "snapshot") msg.agents.forEach(show);
      else if (msg.type === "agent") show(msg.agent);
      else if (msg.type === "sip_bans") showBans(msg.bans);
      else if (msg.type === "wallboard") showBoard(msg.board);
      // The page's other scripts (the screen pop) follow the same messages.
      document.dispatchEvent(new CustomEvent("lianluo:message", { detail: msg }));
    });
    ws.addEventListener("close", (ev) => {
      setLive(false);
      if (leaving) return;
      if (ev.code === 4401) { window.location.assign("/login?expired=1"); return; }
      if (ev.code === 4001) { window.location.assign("/login?signed_out=1"); return; }  // in another tab
      setTimeout(async () => {
        // A refused handshake looks like any network drop: ask whether the session still holds.
        try {
          const me = await fetch("/panel/api/me", { credentials: "same-origin", headers: { "Accept": "application/json" } });
          if (me.status === 401) { window.location.assign("/login?expired=1"); return; }
        } catch (err) { /* server unreachable: keep trying */ }
        connect();
      }, delay);
      delay = Math.min(delay * 2, 15000);
    });
  }
  if (page === "agent" || page === "supervisor" || page === "wallboard") connect();
})();
