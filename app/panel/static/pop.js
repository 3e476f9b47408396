// Lianluo panel: the screen pop, after-call work and the idle timer on the agent's page.
// It follows the live messages panel.js receives (one "lianluo:message" event per message)
// and builds everything with DOM calls and textContent: nothing from the server is parsed
// as HTML. The server decides every change; this file only asks.
"use strict";
(function () {
  const dataNode = document.getElementById("pop-data");
  const agentBox = document.getElementById("agent");
  if (!dataNode || !agentBox) return;
  const cfg = JSON.parse(dataNode.textContent);
  const text = cfg.text;
  const panelData = document.getElementById("panel-data");
  const errorText = panelData ? JSON.parse(panelData.textContent).text.error : "{message}";
  const agentId = agentBox.dataset.agentId;
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.content : "";
  const locale = cfg.lang === "zh" ? "zh-CN" : "en-GB";
  const popBox = document.getElementById("pop");
  const acw = document.getElementById("acw");
  const acwForm = document.getElementById("acw-form");
  const acwInteraction = document.getElementById("acw-interaction");
  const acwCode = document.getElementById("acw-code");
  const acwNotes = document.getElementById("acw-notes");
  const acwSave = document.getElementById("acw-save");
  const countdown = document.getElementById("acw-countdown");
  const saved = document.getElementById("acw-saved");

  let agent = null; // the latest view of this agent
  let pop = null; // the pop on screen
  let wrapDeadline = null; // when wrap-up ends, in this browser's clock
  let lastInput = Date.now(); // the idle timer's clocks (see the end of this file)
  let readySince = Date.now();

  // -- helpers ---------------------------------------------------------------------------------
  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, (whole, key) => (key in values ? String(values[key]) : whole));
  }
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (typeof value === "boolean") node[key] = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) if (child !== null && child !== undefined && child !== false) node.append(child);
    return node;
  }
  function when(iso) {
    return iso ? new Date(iso).toLocaleString(locale, { dateStyle: "short", timeStyle: "short" }) : "";
  }
  function message(msg) {
    const m = document.getElementById("message");
    if (m) m.textContent = msg || "";
  }
  async function send(url, body) {
    const resp = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body || {}),
    });
    const answer = await resp.json().catch(() => ({}));
    if (resp.status === 401) window.location.assign("/login?expired=1");
    return { ok: resp.ok, status: resp.status, answer };
  }
  function failed(r) {
    message(fill(errorText, { message: (r.answer && r.answer.message) || r.status }));
  }
  function pairs(rows) {
    const list = el("dl");
    for (const [label, value, props] of rows) list.append(el("dt", null, label), el("dd", props || null, value));
    return list;
  }

  // -- the pop ---------------------------------------------------------------------------------
  function customerPart(p) {
    const c = p.customer;
    if (!c) return unknownPart(p);
    const rows = [
      [text["pop.account"], c.account_number || "—", { id: "pop-account" }],
      [text["pop.phone"], c.phone || p.ani, null],
    ];
    if (c.email) rows.push([text["pop.email"], c.email, null]);
    rows.push([text["pop.notes"], c.notes || "—", { id: "pop-customer-notes", class: "notes" }]);
    return el(
      "div",
      { class: "customer", id: "pop-customer", dataset: { customerId: String(c.id) } },
      el("h2", { id: "pop-name" }, c.name),
      el(
        "p",
        { class: "badges" },
        el("span", { class: "badge tier-" + c.tier, id: "pop-tier", dataset: { tier: c.tier } },
          fill(text["pop.tier"], { tier: text["tier." + c.tier] || c.tier })),
        c.vip ? el("span", { class: "badge vip", id: "pop-vip" }, text["pop.vip"]) : null,
      ),
      pairs(rows),
    );
  }

  function unknownPart(p) {
    const form = el(
      "form",
      { class: "new-customer", id: "pop-new-customer" },
      el("label", null, text["pop.name"], el("input", { name: "name", id: "new-name", maxlength: "200", required: true })),
      el("label", null, text["pop.account"], el("input", { name: "account_number", id: "new-account", maxlength: "64" })),
      el("label", null, text["pop.email"], el("input", { name: "email", id: "new-email", type: "email", maxlength: "200" })),
      el("label", { class: "notes" }, text["pop.notes"],
        el("textarea", { name: "notes", id: "new-notes", rows: "2", maxlength: "4000" })),
      el("button", { type: "submit", id: "new-create" }, text["pop.create"]),
    );
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const fields = new FormData(form);
      const body = { interaction_id: p.interaction_id };
      for (const key of ["name", "account_number", "email", "notes"]) body[key] = fields.get(key) || "";
      const button = form.querySelector("button");
      button.disabled = true;
      try {
        const r = await send("/panel/api/customers", body);
        if (!r.ok) { failed(r); return; }
        message(text["pop.created"]);
        const current = pop && pop.interaction_id === p.interaction_id ? pop : p;
        current.customer = r.answer;
        document.getElementById("pop-customer").replaceWith(customerPart(current));
      } catch (err) {
        failed({ status: String(err), answer: {} });
      } finally {
        button.disabled = false;
      }
    });
    return el(
      "div",
      { class: "customer unknown", id: "pop-customer" },
      el("h2", { id: "pop-name" }, text["pop.unknown"]),
      el("p", { class: "hint" }, text["pop.unknown_hint"]),
      form,
    );
  }

  // A flow's label in the page's language (English when it has no Chinese one), else null.
  function label(labels) {
    return (labels && (labels[cfg.lang] || labels.en)) || null;
  }

  function ivrPart(p) {
    const rows = [[text["pop.digits"], p.ivr.digits || text["pop.nothing"], { id: "pop-digits" }]];
    const lang = p.ivr.language;
    if (lang) rows.push([text["pop.language"], text["lang." + lang] || lang, { id: "pop-language" }]);
    const menuLabels = p.ivr.menu_labels || [];
    const choices = p.ivr.menu.map((choice, i) => label(menuLabels[i]) || choice);
    if (choices.length) rows.push([text["pop.menu"], choices.join(" → "), { id: "pop-menu" }]);
    const fieldLabels = p.ivr.field_labels || {};
    for (const [key, value] of p.ivr.collected) {
      rows.push([label(fieldLabels[key]) || key, value, { class: "collected", dataset: { key } }]);
    }
    return el("section", { class: "ivr", id: "pop-ivr" }, el("h3", null, text["pop.ivr"]), pairs(rows));
  }

  // Why this call came here: the engine's facts in the agent's words, its own line behind a toggle.
  function reasonSentence(part) {
    const values = { ...part };
    if (values.skill) values.skill = cfg.skills[values.skill] || values.skill;
    const template = text["rr." + part.kind];
    return template ? fill(template, values) : null;
  }

  function routePart(p) {
    const sentences = (p.route.parts || []).map(reasonSentence).filter((x) => x);
    const readable = sentences.length
      ? el("ul", { class: "reason-parts", id: "pop-reason-parts" },
        ...sentences.map((line, i) => el("li", { dataset: { kind: p.route.parts[i].kind } }, line)))
      : null;
    const detail = el("p", { class: "reason", id: "pop-reason" }, p.route.reason || "—");
    return el(
      "section",
      { class: "route", id: "pop-route" },
      el("h3", null, text["pop.route"]),
      pairs([[text["pop.queue"], p.route.queue || "—", { id: "pop-queue" }]]),
      readable,
      readable
        ? el("details", { class: "reason-detail", id: "pop-reason-detail" },
          el("summary", { id: "pop-reason-toggle" }, text["pop.why_detail"]), detail)
        : detail,
    );
  }

  function callbackPart(p) {
    const cb = p.callback;
    if (!cb) return null;
    const box = el(
      "section",
      { class: "callback", id: "pop-callback", dataset: { callbackId: cb.id } },
      el("h3", null, text["pop.callback"]),
      el("p", null, (text["pop.source." + cb.source] || cb.source) + " · " +
        fill(text["pop.callback_detail"], { time: when(cb.requested_at), attempts: cb.attempts })),
    );
    const vm = cb.voicemail;
    if (vm) {
      const length = vm.duration_s ? " (" + Math.round(vm.duration_s) + " s)" : "";
      box.append(
        el("p", { class: "voicemail" }, text["pop.voicemail"] + length + " · " + when(vm.recorded_at)),
        el("audio", { id: "pop-voicemail", controls: true, preload: "none", src: vm.audio_url }),
        el("a", { id: "pop-voicemail-link", href: vm.audio_url, download: "voicemail-" + vm.id + ".wav" },
          text["pop.voicemail_file"]),
      );
    }
    return box;
  }

  function historyPart(p) {
    const box = el("section", { class: "history", id: "pop-history" }, el("h3", null, text["pop.history"]));
    if (!p.history.length) {
      box.append(el("p", { class: "empty" }, text["pop.no_history"]));
      return box;
    }
    const head = el("tr", null, ...["pop.when", "pop.outcome", "pop.handled_by", "pop.code", "acw.notes"]
      .map((key) => el("th", null, text[key])));
    const rows = p.history.map((h) => el(
      "tr",
      { dataset: { interactionId: h.id } },
      el("td", null, when(h.arrived_at) + " · " + (text["pop.direction." + h.direction] || h.direction)),
      el("td", null, text["outcome." + (h.outcome || "open")] || h.outcome),
      el("td", null, h.agent_name ? h.agent_name + " (" + h.agent_id + ")" : (h.agent_id || "—")),
      el("td", { class: "code", dataset: { code: h.disposition || "" } },
        h.disposition ? (cfg.codes[h.disposition] || h.disposition) : "—"),
      el("td", { class: "notes" }, h.notes || ""),
    ));
    box.append(el("table", null, el("thead", null, head), el("tbody", null, ...rows)));
    return box;
  }

  function phaseFor(p) {
    if (agent && agent.interaction_id === p.interaction_id) {
      if (agent.state === "on_call") return "on_call";
      if (agent.state === "wrap_up") return "ended";
    }
    return "offered";
  }

  function setPhase(phase) {
    popBox.dataset.phase = phase;
    const title = document.getElementById("pop-title");
    if (title) title.textContent = text[phase === "offered" ? "pop.title" : "pop.title_" + phase];
  }

  function showPop(p) {
    if (p.agent_id && p.agent_id !== agentId) return;
    const fresh = !pop || pop.interaction_id !== p.interaction_id;
    // The same call again, completed: keep a profile the agent has started typing.
    const typing = !fresh && !p.customer && document.getElementById("pop-new-customer");
    const customer = typing ? document.getElementById("pop-customer") : customerPart(p);
    pop = p;
    const parts = [
      el("header", null,
        el("h2", { class: "pop-title", id: "pop-title" }, text["pop.title"]),
        el("span", { class: "ani", id: "pop-ani" }, p.ani),
        p.callback ? el("span", { class: "badge callback" }, text["pop.callback"]) : null),
      customer,
      el("div", { class: "columns" }, ivrPart(p), routePart(p)),
      callbackPart(p),
      historyPart(p),
    ];
    popBox.replaceChildren(...parts.filter((part) => part));
    popBox.dataset.interactionId = p.interaction_id;
    popBox.dataset.ani = p.ani || ""; // the call box's fax form starts from the caller's number
    remember(POP_KEY, p);
    setPhase(phaseFor(p));
    popBox.hidden = false;
    if (fresh) {
      delete popBox.dataset.paintedAt;
      popBox.dataset.shownAt = String(performance.timeOrigin + performance.now());
      // The frame that shows it is being produced now: that is when the agent can see it.
      requestAnimationFrame(() => { popBox.dataset.paintedAt = String(performance.timeOrigin + performance.now()); });
      if (acwInteraction.value !== p.interaction_id) {
        acw.hidden = true; // a new offer: the previous call's form goes away
      }
    }
    if (acwInteraction.value === p.interaction_id && p.disposition && !acwCode.value) prefill(p.disposition);
  }

  function hidePop() {
    pop = null;
    forget(POP_KEY);
    popBox.hidden = true;
    popBox.replaceChildren();
    delete popBox.dataset.interactionId;
    delete popBox.dataset.ani;
  }

  // -- what survives a reload (switching the language reloads the page) -----------------------
  // The last call's card and the after-call form being filled in are kept for this tab only.
  const POP_KEY = "lianluo-pop-" + agentId;
  const ACW_KEY = "lianluo-acw-" + agentId;
  function remember(key, value) {
    try { sessionStorage.setItem(key, JSON.stringify(value)); } catch (err) { /* storage off */ }
  }
  function forget(key) {
    try { sessionStorage.removeItem(key); } catch (err) { /* storage off */ }
  }
  function recall(key) {
    try { return JSON.parse(sessionStorage.getItem(key) || "null"); } catch (err) { return null; }
  }
  function rememberAcw() {
    if (acwInteraction.value) {
      remember(ACW_KEY, { interaction_id: acwInteraction.value, code: acwCode.value, notes: acwNotes.value });
    }
  }

  // -- after-call work -------------------------------------------------------------------------
  const codeError = document.getElementById("acw-code-error");
  const notesError = document.getElementById("acw-notes-error");
  acwForm.noValidate = true; // errors are shown beside their field, not in the browser's bubble
  function fieldErrors(code, notes) {
    codeError.textContent = code || "";
    notesError.textContent = notes || "";
    acwCode.setAttribute("aria-invalid", code ? "true" : "false");
    acwNotes.setAttribute("aria-invalid", notes ? "true" : "false");
  }
  acwCode.addEventListener("change", () => { if (acwCode.value) fieldErrors("", notesError.textContent); rememberAcw(); });
  acwNotes.addEventListener("input", rememberAcw);
  function prefill(disposition) {
    acwCode.value = disposition.code;
    acwNotes.value = disposition.notes || "";
    saved.textContent = fill(text["acw.saved"], { code: cfg.codes[disposition.code] || disposition.code });
    saved.dataset.code = disposition.code;
  }

  function openAcw(interactionId) {
    if (acwInteraction.value !== interactionId) {
      acwInteraction.value = interactionId;
      acwCode.value = "";
      acwNotes.value = "";
      fieldErrors("", "");
      saved.textContent = "";
      delete saved.dataset.code;
      if (pop && pop.interaction_id === interactionId && pop.disposition) prefill(pop.disposition);
    }
    acw.hidden = false;
  }

  function tick() {
    if (wrapDeadline === null) {
      countdown.hidden = true;
      return;
    }
    const left = Math.max(0, Math.ceil((wrapDeadline - Date.now()) / 1000));
    countdown.dataset.left = String(left);
    countdown.textContent = left > 0 ? fill(text["acw.countdown"], { seconds: left }) : text["acw.over"];
    countdown.hidden = false;
  }
  setInterval(tick, 250);

  acwForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const interactionId = acwInteraction.value;
    if (!interactionId) return;
    if (!acwCode.value) { fieldErrors(text["acw.error_code"], ""); acwCode.focus(); return; }
    acwSave.disabled = true;
    try {
      const r = await send("/panel/api/interactions/" + encodeURIComponent(interactionId) + "/disposition",
        { code: acwCode.value, notes: acwNotes.value });
      if (!r.ok) {
        // Beside the field it is about: the server names the notes when they are the problem.
        const why = fill(errorText, { message: (r.answer && r.answer.message) || r.status });
        if (/notes/i.test(why)) fieldErrors("", why);
        else fieldErrors(why, "");
        return;
      }
      fieldErrors("", "");
      message("");
      prefill(r.answer);
      rememberAcw();
      if (pop && pop.interaction_id === interactionId) { pop.disposition = r.answer; remember(POP_KEY, pop); }
    } catch (err) {
      fieldErrors(fill(errorText, { message: String(err) }), "");
    } finally {
      acwSave.disabled = false;
    }
  });

  // -- the agent's state -----------------------------------------------------------------------
  function onAgent(a) {
    if (a.id !== agentId) return;
    const before = agent ? agent.state : null;
    agent = a;
    if (a.state === "ready" && before !== "ready") readySince = Date.now();
    if ((a.state === "on_call" || a.state === "wrap_up") && a.interaction_id) openAcw(a.interaction_id);
    if (a.state === "wrap_up" && typeof a.wrap_up_left_s === "number") {
      wrapDeadline = Date.now() + a.wrap_up_left_s * 1000;
    } else {
      wrapDeadline = null;
    }
    tick();
    if (!pop) return;
    if (a.interaction_id === pop.interaction_id) {
      setPhase(phaseFor(pop));
    } else if (popBox.dataset.phase === "offered") {
      hidePop(); // the offer ended unanswered (missed, or the caller left)
    } else {
      setPhase("ended");
    }
  }

  document.addEventListener("lianluo:message", (ev) => {
    const msg = ev.detail;
    if (msg.type === "pop") showPop(msg.pop);
    else if (msg.type === "agent") onAgent(msg.agent);
    else if (msg.type === "snapshot") msg.agents.forEach(onAgent);
  });

  // A reloaded page (the language switch) gets its last call back; the server's own pop of a
  // call still in progress, sent when the socket opens, replaces it.
  const kept = recall(POP_KEY);
  if (kept && kept.agent_id === agentId) {
    showPop(kept);
    setPhase("ended");
    const form = recall(ACW_KEY);
    if (form && form.interaction_id === kept.interaction_id) {
      openAcw(form.interaction_id);
      acwCode.value = form.code || "";
      acwNotes.value = form.notes || "";
      if (kept.disposition && !form.code) prefill(kept.disposition);
    }
  }

  // -- idle: no keyboard or mouse for cfg.idle_s while Ready -> ask for Not Ready ("idle") ---------
  // Time on a call is work, not idleness: the idle clock starts again whenever the agent
  // becomes Ready. Other tabs of the panel share their activity through localStorage.
  const SHARED_KEY = "lianluo-activity";
  let lastShared = 0;
  let asking = false;
  function activity() {
    lastInput = Date.now();
    if (lastInput - lastShared > 1000) {
      lastShared = lastInput;
      try { localStorage.setItem(SHARED_KEY, String(lastInput)); } catch (err) { /* storage off */ }
    }
  }
  for (const type of ["mousemove", "mousedown", "keydown", "wheel", "touchstart", "input"]) {
    window.addEventListener(type, activity, { passive: true, capture: true });
  }
  async function checkIdle() {
    if (!cfg.idle_s || !agent || agent.state !== "ready" || asking) return;
    let shared = 0;
    try { shared = Number(localStorage.getItem(SHARED_KEY)) || 0; } catch (err) { /* storage off */ }
    if (Date.now() - Math.max(lastInput, shared, readySince) < cfg.idle_s * 1000) return;
    asking = true;
    try {
      const r = await send("/panel/api/agents/" + encodeURIComponent(agentId) + "/idle");
      if (r.ok) message(text["idle.set"]);
      // 409: no longer Ready (a call came in meanwhile): nothing to do.
    } catch (err) {
      /* offline: the next check asks again */
    } finally {
      asking = false;
      readySince = Date.now();
    }
  }
  setInterval(checkIdle, 1000);
})();
