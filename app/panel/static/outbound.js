// Lianluo panel: the outbound section. A preview campaign's "Next customer" holds one customer
// for this agent and shows the card; Call rings the agent's phone, then the customer's (the
// dialer decides and checks the outbound policy); Skip, or the countdown running out, hands
// the customer back with no attempt spent. Nothing from the server is parsed as HTML.
"use strict";
(function () {
  const box = document.getElementById("outbound");
  const dataNode = document.getElementById("outbound-data");
  if (!box || !dataNode) return;
  const text = JSON.parse(dataNode.textContent).text;
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.content : "";
  const $ = (id) => document.getElementById(id);
  const card = $("preview-card");
  const messageLine = $("preview-message");
  let shown = null; // {campaign, lead, deadline}
  let timer = null;

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, (whole, key) => (key in values ? String(values[key]) : whole));
  }
  async function post(url) {
    const resp = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": csrf },
      body: "{}",
    });
    const answer = await resp.json().catch(() => null);
    if (resp.status === 401) window.location.assign("/login?expired=1");
    return { ok: resp.ok, status: resp.status, answer };
  }
  function say(message) { messageLine.textContent = message || ""; }
  function base(campaign) { return "/panel/api/campaigns/" + encodeURIComponent(campaign) + "/preview"; }

  function hide() {
    shown = null;
    card.hidden = true;
    delete card.dataset.leadId;
    if (timer) clearInterval(timer);
    timer = null;
  }

  function tick() {
    if (!shown) return;
    const left = Math.max(0, Math.ceil((shown.deadline - Date.now()) / 1000));
    const countdown = $("preview-countdown");
    countdown.dataset.left = String(left);
    countdown.textContent = fill(text["out.countdown"], { seconds: left });
    if (left === 0) skip(text["out.expired"]);
  }

  function show(campaign, lead, holdS) {
    shown = { campaign, lead, deadline: Date.now() + holdS * 1000 };
    card.dataset.leadId = String(lead.id);
    card.dataset.campaign = campaign;
    $("preview-phone").textContent = lead.phone;
    const details = $("preview-details");
    details.replaceChildren();
    const rows = [[text["out.campaign"], campaign], [text["out.attempts"], String(lead.attempts)]];
    for (const [key, value] of Object.entries(lead.attributes || {})) rows.push([key, String(value)]);
    for (const [label, value] of rows) {
      const dt = document.createElement("dt");
      dt.textContent = label;
      const dd = document.createElement("dd");
      dd.textContent = value;
      details.append(dt, dd);
    }
    card.hidden = false;
    if (timer) clearInterval(timer);
    timer = setInterval(tick, 250);
    tick();
  }

  async function next(button) {
    button.disabled = true;
    try {
      const r = await post(base(button.dataset.campaign));
      if (!r.ok) { say(fill(text["out.error"], { message: (r.answer && r.answer.message) || r.status })); return; }
      if (!r.answer) { hide(); say(text["out.none"]); return; }
      say("");
      show(button.dataset.campaign, r.answer, Number(button.dataset.holdS) || 60);
    } finally {
      button.disabled = false;
    }
  }

  async function skip(note) {
    if (!shown) return;
    const { campaign, lead } = shown;
    hide();
    const r = await post(base(campaign) + "/" + lead.id + "/skip");
    say(r.ok ? (note || fill(text["out.skipped"], { phone: lead.phone }))
      : fill(text["out.error"], { message: (r.answer && r.answer.message) || r.status }));
  }

  async function call() {
    if (!shown) return;
    const { campaign, lead } = shown;
    $("preview-call").disabled = true;
    try {
      const r = await post(base(campaign) + "/" + lead.id + "/call");
      if (!r.ok) { say(fill(text["out.error"], { message: (r.answer && r.answer.message) || r.status })); return; }
      hide();
      say(fill(text["out.calling"], { phone: lead.phone }));
    } finally {
      $("preview-call").disabled = false;
    }
  }

  for (const button of box.querySelectorAll("button.preview-next")) {
    button.addEventListener("click", () => next(button));
  }
  $("preview-call").addEventListener("click", call);
  $("preview-skip").addEventListener("click", () => skip());
})();
