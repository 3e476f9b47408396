// Lianluo panel: experts (issue 13). For the agent on a call, "Ask an expert" (a group, an
// expertise or an expert by name, a note, consult or blind) posts to /panel/api/experts/ask/<id>.
// For an expert, the offer's preview (pushed as an `expert_offer` websocket message, which
// panel.js re-sends as "lianluo:message") shows the customer, what the IVR collected, the
// agent's note and why they were chosen, with a countdown, Accept and Reject. No phone rings
// before Accept. An agent of a queue that offers with a preview (`queues[i].offer`) gets the same
// box (kind "queue": no asking agent, no note). Labels come from #experts-data; text only, never HTML.
"use strict";
(function () {
  const dataNode = document.getElementById("experts-data");
  if (!dataNode) return;
  const text = JSON.parse(dataNode.textContent).text;
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.content : "";
  const $ = (id) => document.getElementById(id);
  const askBox = $("experts-ask");
  const target = $("experts-target");
  const note = $("experts-note");
  const status = $("experts-status");
  const offerBox = $("expert-offer");
  const left = $("expert-offer-left");
  const closedLine = $("expert-offer-closed");
  let call = null;
  let offer = null;
  let deadline = 0;
  let ticking = null;
  let loaded = false;
  let busy = false;

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, (whole, key) => (key in values ? String(values[key]) : whole));
  }
  async function getJson(url) {
    const resp = await fetch(url, { credentials: "same-origin", cache: "no-store", headers: { "Accept": "application/json" } });
    if (resp.status === 401) window.location.assign("/login?expired=1");
    return { ok: resp.ok, status: resp.status, body: await resp.json().catch(() => null) };
  }
  async function post(url, body) {
    const resp = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    });
    if (resp.status === 401) window.location.assign("/login?expired=1");
    return { ok: resp.ok, status: resp.status, body: (await resp.json().catch(() => null)) || {} };
  }
  function option(value, label) {
    const o = document.createElement("option");
    o.value = value;
    o.textContent = label;
    return o;
  }

  // -- asking (the agent on a call) ------------------------------------------------------------
  async function loadTargets() {
    const r = await getJson("/panel/api/experts");
    if (!r.ok || !r.body) return;
    const keep = target.value;
    while (target.options.length > 1) target.remove(1);
    r.body.groups.forEach((g) => target.appendChild(option("group:" + g.name, fill(text["ask.group"], { name: g.name }))));
    const tags = [...new Set(r.body.experts.flatMap((e) => Object.keys(e.expertise)))].sort();
    tags.forEach((tag) => target.appendChild(option("expertise:" + tag, fill(text["ask.expertise"], { name: tag }))));
    r.body.experts.forEach((e) => target.appendChild(option("expert:" + e.id, fill(text["ask.expert"], { name: e.name, state: e.state }))));
    target.value = keep;
  }
  function drawAsk() {
    const mine = !!call && call.your_part === "agent";
    askBox.hidden = !mine;
    if (!mine) return;
    if (!loaded) { loaded = true; loadTargets(); }
    if (call.asking) status.textContent = fill(text["ask.offering"], { expert: call.asking.expert });
    else if (call.consult && call.consult.expert) {
      status.textContent = fill(text[call.consult.answered ? "ask.talking" : "ask.ringing"], { expert: call.consult.expert });
    } else if (status.dataset.kind !== "error") status.textContent = "";
  }
  async function refreshCall() {
    const r = await getJson("/panel/api/calls/current");
    call = r.ok ? r.body : null;
    drawAsk();
  }
  async function ask(blind) {
    if (busy || !call || !target.value) return;
    busy = true;
    try {
      const r = await post("/panel/api/experts/ask/" + encodeURIComponent(call.interaction_id), {
        target: target.value, note: note.value, blind,
      });
      if (!r.ok) {
        status.dataset.kind = "error";
        status.textContent = fill(text.error, { message: r.body.message || r.status });
      } else {
        status.dataset.kind = "";
        call = Object.assign({}, call, r.body.call);
        drawAsk();
      }
    } finally {
      busy = false;
    }
  }
  $("experts-consult").addEventListener("click", () => ask(false));
  $("experts-blind").addEventListener("click", () => ask(true));

  // -- the preview (an expert offered a call) ---------------------------------------------------
  function tick() {
    const seconds = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
    left.textContent = fill(text["offer.left"], { seconds });
  }
  function showOffer(o, fromServerClock) {
    offer = o;
    const c = o.customer;
    const who = [c.name || c.ani, c.name ? c.ani : "", c.tier || "", c.vip ? "VIP" : ""].filter(Boolean);
    $("expert-offer-customer").textContent = who.join(" · ");
    const ivr = Object.entries(o.ivr.collected).map(([k, v]) => k + ": " + v);
    if (o.ivr.digits) ivr.unshift("keys: " + o.ivr.digits);
    if (o.kind === "queue" && o.ivr.queue) ivr.unshift(fill(text["offer.queue"], { queue: o.ivr.queue }));
    $("expert-offer-ivr").textContent = ivr.join(" · ");
    $("expert-offer-note").textContent = o.note || "";
    $("expert-offer-asked-by").textContent = o.asked_by.name || o.asked_by.id || "";
    // A queue's offer has no asking agent and no note: those rows are not shown.
    document.querySelectorAll('#expert-offer [data-row="note"]').forEach((n) => { n.hidden = !o.note; });
    document.querySelectorAll('#expert-offer [data-row="asked-by"]').forEach((n) => {
      n.hidden = !(o.asked_by.name || o.asked_by.id);
    });
    $("expert-offer-reason").textContent = o.reason;
    deadline = fromServerClock ? Date.parse(o.expires_at) : Date.now() + o.offer_s * 1000;
    closedLine.textContent = "";
    offerBox.hidden = false;
    offerBox.dataset.offerId = o.offer_id;
    offerBox.dataset.shownAt = String(Date.now()); // when the preview was on screen (measured by tests)
    clearInterval(ticking);
    tick();
    ticking = setInterval(tick, 250);
  }
  function closeOffer(offerId, verdict) {
    if (!offer || offer.offer_id !== offerId) return;
    offer = null;
    clearInterval(ticking);
    offerBox.hidden = true;
    closedLine.textContent = text["offer.closed." + verdict] || "";
  }
  async function answer(verdict) {
    if (!offer) return;
    const r = await post("/panel/api/experts/offers/" + encodeURIComponent(offer.offer_id) + "/" + verdict, {});
    if (!r.ok) closedLine.textContent = fill(text.error, { message: r.body.message || r.status });
  }
  $("expert-offer-accept").addEventListener("click", () => answer("accept"));
  $("expert-offer-reject").addEventListener("click", () => answer("reject"));

  document.addEventListener("lianluo:message", (ev) => {
    const msg = ev.detail || {};
    if (msg.type === "expert_offer") showOffer(msg.offer, false);
    else if (msg.type === "expert_offer_closed") closeOffer(msg.offer_id, msg.verdict);
    else if (msg.type === "call" || msg.type === "agent" || msg.type === "snapshot") refreshCall();
  });
  refreshCall();
  getJson("/panel/api/experts/offer").then((r) => { if (r.ok && r.body) showOffer(r.body, true); });
})();
