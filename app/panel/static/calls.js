// Lianluo panel: the call section (hold, mute, keys, hang-up, transfer, consult) on the
// agent's page. The server holds the call and decides everything; this file shows the
// call as GET /panel/api/calls/current describes it and posts each button to
// /panel/api/calls/<id>/<action>. It asks again whenever the agent's state changes, a
// `call` message says the call changed (panel.js re-sends both as "lianluo:message"),
// and after each of its own requests. Labels come from #call-data; nothing is parsed as HTML.
"use strict";
(function () {
  const box = document.getElementById("call");
  const dataNode = document.getElementById("call-data");
  const agentBox = document.getElementById("agent");
  if (!box || !dataNode || !agentBox) return;
  const text = JSON.parse(dataNode.textContent).text;
  const panelData = document.getElementById("panel-data");
  const errorText = panelData ? JSON.parse(panelData.textContent).text.error : "{message}";
  const agentId = agentBox.dataset.agentId;
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.content : "";
  const $ = (id) => document.getElementById(id);
  const statusLine = $("call-status");
  const partLine = $("call-part");
  const keypad = $("call-keypad");
  const keypadToggle = $("call-keypad-toggle");
  const target = $("call-target");
  const consulting = $("call-consulting");
  const consultStatus = $("call-consult-status");
  const messageLine = $("call-message");

  let call = null; // the call as the server last described it, or null
  let targets = { queues: [], agents: [] };
  let busy = false; // one request at a time: the call's task carries them out in order anyway
  let asked = 0; // the latest GET of the call; older answers arriving late are dropped
  let seenState = null;
  let seenInteraction = null;

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, (whole, key) => (key in values ? String(values[key]) : whole));
  }
  function say(message, kind) {
    messageLine.textContent = message || "";
    messageLine.dataset.kind = kind || "";
  }
  function agentLabel(id) {
    const known = targets.agents.find((a) => a.id === id);
    return known ? known.name + " (" + id + ")" : id;
  }

  async function getJson(url) {
    const resp = await fetch(url, { credentials: "same-origin", cache: "no-store", headers: { "Accept": "application/json" } });
    const body = await resp.json().catch(() => null);
    if (resp.status === 401) window.location.assign("/login?expired=1");
    return { ok: resp.ok, status: resp.status, body };
  }

  // -- where a call can go -----------------------------------------------------------------------
  function option(value, label) {
    const o = document.createElement("option");
    o.value = value;
    o.textContent = label;
    return o;
  }

  function drawTargets() {
    const chosen = target.value;
    const queues = document.createElement("optgroup");
    queues.label = text["call.queues"];
    for (const q of targets.queues) {
      queues.append(option("queue:" + q.name, q.staffed ? q.name : fill(text["call.unstaffed"], { name: q.name })));
    }
    const agents = document.createElement("optgroup");
    agents.label = text["call.agents"];
    // Ready agents first: they are the ones a transfer or consultation can reach now.
    const ordered = [...targets.agents].sort((a, b) => Number(b.ready) - Number(a.ready));
    for (const a of ordered) {
      const name = a.name + " (" + a.id + ")";
      agents.append(option("agent:" + a.id, a.ready ? name : fill(text["call.not_ready"], { name })));
    }
    target.replaceChildren(option("", text["call.pick"]), queues, agents);
    target.value = [...target.options].some((o) => o.value === chosen) ? chosen : "";
    drawConsultButton();
  }

  async function loadTargets() {
    try {
      const r = await getJson("/panel/api/calls/targets");
      if (!r.ok || !r.body) return;
      targets = r.body;
      drawTargets();
      draw(); // agent names in the status lines
    } catch (err) {
      /* offline: the list stays as it was */
    }
  }

  function drawConsultButton() {
    // A queue takes a transfer only; a number typed in can be consulted whatever is picked.
    const number = $("call-number").value.trim();
    $("call-consult").disabled = busy || (!number && target.value.startsWith("queue:"));
  }

  // -- the call ----------------------------------------------------------------------------------
  function draw() {
    if (!call) {
      box.hidden = true;
      box.dataset.interactionId = "";
      keypad.hidden = true;
      keypadToggle.setAttribute("aria-expanded", "false");
      return;
    }
    const consult = call.consult;
    const mine = call.your_part === "agent";
    box.hidden = false;
    box.dataset.interactionId = call.interaction_id;
    box.dataset.part = call.your_part;
    box.dataset.held = String(call.held);
    box.dataset.muted = String(call.muted);
    box.dataset.consult = consult ? (consult.answered ? "answered" : "ringing") : "";
    box.dataset.conference = String(call.conference.length > 0);

    const parts = [fill(text["call.with"], { ani: call.ani })];
    if (call.queue) parts.push(fill(text["call.queue"], { queue: call.queue }));
    if (call.held) parts.push(text["call.held"]);
    if (mine && call.muted) parts.push(text["call.muted"]);
    if (mine && call.notice) parts.push(text["call.notice"]);
    if (call.conference.length) {
      const others = [call.agent_id, ...call.conference].filter((id) => id && id !== agentId).map(agentLabel);
      parts.push(fill(text["call.conference_with"], { agents: others.join(", ") }));
    }
    if (call.recording && call.recording.paused) parts.push(text["call.recording_paused"]);
    statusLine.textContent = parts.join(" · ");

    partLine.hidden = mine;
    if (!mine) {
      const key = call.your_part === "consulted" ? "call.part_consulted" : "call.part_conference";
      partLine.textContent = fill(text[key], { agent: agentLabel(call.agent_id) });
    }
    $("call-actions").hidden = !mine;
    $("call-transfer").hidden = !mine || !!consult;
    consulting.hidden = !mine || !consult;
    if (!mine) keypad.hidden = true;

    $("call-hold").hidden = call.held;
    $("call-resume").hidden = !call.held;
    $("call-mute").hidden = call.muted;
    $("call-unmute").hidden = !call.muted;
    // Recording: pause for card numbers and other secrets (silence in the file, a marked span).
    const rec = call.recording;
    box.dataset.recording = rec ? (rec.paused ? "paused" : "on") : "";
    $("call-rec-pause").hidden = !rec || rec.paused;
    $("call-rec-resume").hidden = !rec || !rec.paused;
    if (consult) {
      const key = consult.answered ? "call.consult_answered" : "call.consulting";
      const who = consult.agent_id ? agentLabel(consult.agent_id) : consult.expert || consult.number;
      consultStatus.textContent = fill(text[key], { agent: who });
    }
    for (const button of box.querySelectorAll("button")) button.disabled = busy;
    if (!busy) {
      $("call-resume").disabled = !!consult; // the caller comes back through the consultation's end
      $("call-complete").disabled = !(consult && consult.answered);
      $("call-conference").disabled = !(consult && consult.answered);
    }
    drawConsultButton();
  }

  async function refresh() {
    const mine = ++asked;
    try {
      const r = await getJson("/panel/api/calls/current");
      if (mine !== asked) return;
      if (!r.ok) {
        say(fill(errorText, { message: (r.body && r.body.message) || r.status }), "error");
        return;
      }
      const fresh = r.body && (!call || call.interaction_id !== r.body.interaction_id);
      if (!r.body && call) say("");
      call = r.body;
      draw();
      if (fresh) loadTargets();
    } catch (err) {
      /* offline: the next state change asks again */
    }
  }

  async function control(action, body) {
    if (!call || busy) return;
    const id = call.interaction_id;
    busy = true;
    draw();
    try {
      const resp = await fetch("/panel/api/calls/" + encodeURIComponent(id) + "/" + action, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify(body || {}),
      });
      const answer = await resp.json().catch(() => ({}));
      if (resp.status === 401) { window.location.assign("/login?expired=1"); return; }
      if (!resp.ok) say(fill(errorText, { message: answer.message || resp.status }), "error");
      else say(action === "dtmf" ? fill(text["call.sent"], { digits: body.digits }) : "", "info");
    } catch (err) {
      say(fill(errorText, { message: String(err) }), "error");
    } finally {
      busy = false;
      box.dataset.lastAction = action; // for people and tests: what was asked last
      await refresh();
      draw();
    }
  }

  // -- the buttons -------------------------------------------------------------------------------
  for (const button of box.querySelectorAll("button[data-action]")) {
    button.addEventListener("click", () => {
      const action = button.dataset.action;
      if (action === "transfer" || action === "consult") {
        const number = $("call-number").value.replace(/[\s-]/g, "");
        if (number) {
          // A number outside: a blind transfer, or a consultation through the carrier.
          control(action, { target: "number:" + number });
          return;
        }
        if (!target.value) { say(text["call.pick_first"], "error"); return; }
        if (action === "consult" && !target.value.startsWith("agent:")) {
          say(text["call.consult_agents_only"], "error");
          return;
        }
        control(action, { target: target.value });
        return;
      }
      control(action);
    });
  }
  for (const key of keypad.querySelectorAll("button[data-digit]")) {
    key.addEventListener("click", () => control("dtmf", { digits: key.dataset.digit }));
  }
  keypadToggle.addEventListener("click", () => {
    keypad.hidden = !keypad.hidden;
    keypadToggle.setAttribute("aria-expanded", String(!keypad.hidden));
  });
  target.addEventListener("change", drawConsultButton);
  $("call-number").addEventListener("input", drawConsultButton);
  // Availability changes all the time: look again when the agent opens the list.
  target.addEventListener("focus", loadTargets);

  // -- following the agent -----------------------------------------------------------------------
  // The call timer: from the agent's answer (their on-call state), counted in the page.
  let callStart = null;
  function tickCall() {
    const timer = $("call-timer");
    timer.textContent = callStart === null || !window.lianluoClock ? "" : window.lianluoClock((Date.now() - callStart) / 1000);
  }
  setInterval(tickCall, 500);

  function onAgent(a) {
    if (a.id !== agentId) return;
    if (a.state === "on_call" && typeof a.state_for_s === "number") {
      if (seenState !== "on_call" || a.interaction_id !== seenInteraction) callStart = Date.now() - a.state_for_s * 1000;
    } else if (a.state !== "on_call") {
      callStart = null;
    }
    tickCall();
    if (a.state === seenState && a.interaction_id === seenInteraction) return;
    seenState = a.state;
    seenInteraction = a.interaction_id;
    refresh();
  }
  document.addEventListener("lianluo:message", (ev) => {
    const msg = ev.detail;
    if (msg.type === "agent") onAgent(msg.agent);
    else if (msg.type === "snapshot") msg.agents.forEach(onAgent);
    else if (msg.type === "call") refresh();
  });
  refresh();
})();
