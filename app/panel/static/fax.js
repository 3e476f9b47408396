// Lianluo panel: "Send by fax" in the call box. It follows the screen pop's card (pop.js sets
// the call's id, phase and caller's number on #pop): shown while the call is on and on the
// last-call card after it, hidden for an offer. The server decides everything (policy, access,
// the upload's checks); this file only asks and shows the answer. Nothing is parsed as HTML.
"use strict";
(function () {
  const box = document.getElementById("fax-box");
  const popBox = document.getElementById("pop");
  const dataNode = document.getElementById("fax-data");
  if (!box || !popBox || !dataNode) return;
  const text = JSON.parse(dataNode.textContent).text;
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.content : "";
  const form = document.getElementById("fax-form");
  const number = document.getElementById("fax-number");
  const file = document.getElementById("fax-pdf");
  const sendButton = document.getElementById("fax-send");
  const error = document.getElementById("fax-error");
  const note = document.getElementById("fax-note");
  const list = document.getElementById("fax-jobs");
  const listTitle = document.getElementById("fax-jobs-title");

  let interactionId = null; // the call the box is about
  const jobs = new Map(); // job id -> its latest view

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, (whole, key) => (key in values ? String(values[key]) : whole));
  }
  function url(id) {
    return "/panel/api/interactions/" + encodeURIComponent(id) + "/faxes";
  }

  function render() {
    const rows = [...jobs.values()].sort((a, b) => (a.created_at < b.created_at ? -1 : 1));
    list.replaceChildren(...rows.map((job) => {
      const li = document.createElement("li");
      li.dataset.jobId = job.id;
      li.dataset.status = job.status;
      const what = document.createElement("span");
      what.className = "fax-what";
      what.textContent = job.contents.join(", ") + " → " + job.number + ": ";
      const status = document.createElement("span");
      status.className = "fax-status";
      status.textContent = text["fax.status." + job.status] || job.status;
      li.append(what, status);
      const details = [];
      if (job.pages_expected) details.push(fill(text["fax.pages"], { pages: job.pages_sent, of: job.pages_expected }));
      if (job.attempts > 1 || (job.attempts && job.status !== "sent")) details.push(fill(text["fax.tries"], { attempts: job.attempts }));
      if (job.last_error && job.status !== "sent") details.push(job.last_error);
      if (details.length) {
        const more = document.createElement("span");
        more.className = "fax-detail";
        more.textContent = " (" + details.join("; ") + ")";
        li.append(more);
      }
      return li;
    }));
    listTitle.hidden = jobs.size === 0;
  }

  // How far a job has gone: tries made, then waiting < on the line < done. A push may overtake
  // the answer that created the job; the later view wins.
  function progress(job) {
    const step = job.status === "queued" ? 0 : job.status === "sending" ? 1 : 2;
    return job.attempts * 10 + step;
  }
  function take(job) {
    if (!job || job.interaction_id !== interactionId) return;
    const known = jobs.get(job.id);
    if (known && progress(known) > progress(job)) return;
    jobs.set(job.id, job);
    render();
  }

  async function load() {
    const asked = interactionId;
    if (!asked) return;
    try {
      const resp = await fetch(url(asked), { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!resp.ok || asked !== interactionId) return;
      for (const job of await resp.json()) jobs.set(job.id, job);
      render();
    } catch (err) { /* offline: the next message or reconnect loads again */ }
  }

  function follow() {
    const id = popBox.dataset.interactionId || null;
    const phase = popBox.dataset.phase;
    if (id !== interactionId) {
      interactionId = id;
      jobs.clear();
      render();
      form.reset();
      number.value = popBox.dataset.ani || "";
      error.textContent = "";
      note.textContent = "";
      if (id) load();
    }
    box.dataset.interactionId = id || "";
    box.hidden = !id || popBox.hidden || !(phase === "on_call" || phase === "ended");
  }
  new MutationObserver(follow).observe(popBox, {
    attributes: true,
    attributeFilter: ["hidden", "data-interaction-id", "data-phase", "data-ani"],
  });
  follow();

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!interactionId) return;
    error.textContent = "";
    note.textContent = "";
    const fields = new FormData(form);
    const picked = fields.getAll("documents").length > 0 || (file.files && file.files.length > 0);
    if (!picked) { error.textContent = text["fax.nothing"]; return; }
    if (!(file.files && file.files.length)) fields.delete("pdf");
    sendButton.disabled = true;
    note.textContent = text["fax.sending"];
    try {
      const resp = await fetch(url(interactionId), {
        method: "POST",
        credentials: "same-origin",
        headers: { Accept: "application/json", "X-CSRF-Token": csrf },
        body: fields,
      });
      const answer = await resp.json().catch(() => ({}));
      note.textContent = "";
      if (resp.status === 401) { window.location.assign("/login?expired=1"); return; }
      if (!resp.ok) { error.textContent = answer.message || String(resp.status); return; }
      note.textContent = fill(text["fax.queued"], { documents: answer.contents.join(", "), number: answer.number });
      for (const box of form.querySelectorAll('input[name="documents"]')) box.checked = false;
      file.value = "";
      take(answer);
    } catch (err) {
      note.textContent = "";
      error.textContent = String(err);
    } finally {
      sendButton.disabled = false;
    }
  });

  document.addEventListener("lianluo:message", (ev) => {
    const msg = ev.detail;
    if (msg.type === "fax_job") take(msg.job);
    else if (msg.type === "snapshot" && interactionId) load(); // reconnected: pushes may have been missed
  });
})();
