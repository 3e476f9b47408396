// Lianluo browser softphone. Loaded only on the panel of an agent with `webrtc: true`,
// after /static/vendor/jssip.min.js (JsSIP, bundled by scripts/build-js).
//
// It fetches the signed-in agent's own SIP account from /panel/api/softphone, registers it
// with Asterisk over the SIP websocket, rings on an incoming call, answers and hangs up,
// and plays the caller through the page's <audio> element. Asterisk sees the registration
// as the agent's phone, so the routing desk treats the browser like a desk phone.
//
// Other scripts can follow it: every change is a `lianluo:softphone` event on document,
// with {state, caller, interaction} in detail. window.lianluoSoftphone.stats() sums up the
// current call's RTP counters (for the diagnostics a supervisor asks for, and the tests).
"use strict";
(function () {
  const box = document.getElementById("softphone");
  const dataNode = document.getElementById("softphone-data");
  if (!box || !dataNode) return;
  const cfg = JSON.parse(dataNode.textContent);
  const text = cfg.text;
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.content : "";
  const statusLine = document.getElementById("softphone-status");
  const answerButton = document.getElementById("softphone-answer");
  const hangupButton = document.getElementById("softphone-hangup");
  const audio = document.getElementById("softphone-audio");

  let ua = null;
  let registered = false;
  let lastCause = "";
  let call = null; // {session, caller, interaction, answered}
  const ring = makeRinger();

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, (whole, key) => (key in values ? String(values[key]) : whole));
  }

  function show(state, message) {
    box.dataset.state = state;
    statusLine.textContent = message;
    answerButton.hidden = state !== "ringing";
    answerButton.disabled = state !== "ringing";
    // One Hang up on the page: during a call the call section's button ends it (panel.css hides
    // this one while that one shows), and a ringing offer is refused with the panel's Decline.
    hangupButton.hidden = state !== "on_call";
    document.dispatchEvent(new CustomEvent("lianluo:softphone", {
      detail: { state, caller: call ? call.caller : null, interaction: call ? call.interaction : null },
    }));
  }

  function showIdle(note) {
    const line = registered ? text.registered : fill(text.unregistered, { cause: lastCause || "…" });
    show(registered ? "registered" : "unregistered", note ? note + " " + line : line);
  }

  // -- the ring: a tone made in the page (no audio file to fetch), 1 s on, 3 s off -----------
  function makeRinger() {
    let ctx = null;
    let timer = null;
    let osc = null;
    function beep() {
      try {
        if (!ctx) ctx = new AudioContext();
        if (ctx.state === "suspended") ctx.resume().catch(() => {});
        const gain = ctx.createGain();
        gain.gain.value = 0.15;
        gain.connect(ctx.destination);
        osc = ctx.createOscillator();
        osc.frequency.value = 450;
        osc.connect(gain);
        osc.start();
        osc.stop(ctx.currentTime + 1);
      } catch (err) {
        // No audio output allowed yet (autoplay rules): the page still shows the call.
      }
    }
    return {
      start() {
        if (timer) return;
        beep();
        timer = setInterval(beep, 4000);
      },
      stop() {
        if (timer) clearInterval(timer);
        timer = null;
        if (osc) {
          try { osc.stop(); } catch (err) { /* already stopped */ }
          osc = null;
        }
      },
    };
  }

  // -- the agent's SIP account ------------------------------------------------------------------
  async function account() {
    const resp = await fetch(cfg.api, {
      credentials: "same-origin",
      cache: "no-store",
      headers: { "Accept": "application/json", "X-CSRF-Token": csrf },
    });
    const body = await resp.json().catch(() => ({}));
    if (resp.status === 401) {
      window.location.assign("/login?expired=1");
      throw new Error(body.message || "signed out");
    }
    if (!resp.ok) throw new Error(body.message || String(resp.status));
    return body;
  }

  function register(acc) {
    JsSIP.debug.disable("JsSIP:*");
    ua = new JsSIP.UA({
      sockets: [new JsSIP.WebSocketInterface(acc.ws_url)],
      uri: acc.sip_uri,
      authorization_user: acc.authorization_user,
      password: acc.password,
      display_name: acc.display_name,
      register: true,
      register_expires: acc.register_expires,
      session_timers: false,
      user_agent: "Lianluo panel (JsSIP " + JsSIP.version + ")",
    });
    ua.on("connecting", () => { if (!call && !registered) show("connecting", text.connecting); });
    ua.on("disconnected", () => {
      registered = false;
      lastCause = "websocket closed";
      if (!call) showIdle();
    });
    ua.on("registered", () => {
      registered = true;
      lastCause = "";
      if (!call) showIdle();
    });
    ua.on("unregistered", () => {
      registered = false;
      if (!call) showIdle();
    });
    ua.on("registrationFailed", (ev) => {
      registered = false;
      lastCause = ev.cause || "registration failed";
      if (!call) showIdle();
    });
    ua.on("newRTCSession", (ev) => {
      if (ev.originator === "remote") incoming(ev.session, ev.request);
    });
    ua.start();
  }

  // -- calls ------------------------------------------------------------------------------------
  function callerOf(session) {
    const id = session.remote_identity;
    const number = id && id.uri ? id.uri.user : "";
    const name = id && id.display_name ? id.display_name : "";
    if (name && number && name !== number) return name + " (" + number + ")";
    return name || number || "?";
  }

  function playRemote(stream) {
    if (audio.srcObject !== stream) audio.srcObject = stream;
    audio.play().catch(() => { /* autoplay refused: the Answer click normally allows it */ });
  }

  function incoming(session, request) {
    if (call) {
      session.terminate({ status_code: 486, reason_phrase: "Busy Here" });
      return;
    }
    call = {
      session,
      caller: callerOf(session),
      interaction: request.getHeader("X-Lianluo-Interaction") || null,
      answered: false,
    };
    session.on("peerconnection", (ev) => {
      ev.peerconnection.addEventListener("track", (t) => {
        playRemote(t.streams[0] || new MediaStream([t.track]));
      });
    });
    session.on("confirmed", () => {
      if (!call || call.session !== session) return;
      ring.stop();
      call.answered = true;
      // In case the track arrived before anyone listened.
      const pc = session.connection;
      if (pc && !audio.srcObject) {
        const tracks = pc.getReceivers().map((r) => r.track).filter((t) => t && t.kind === "audio");
        if (tracks.length) playRemote(new MediaStream(tracks));
      }
      show("on_call", fill(text.on_call, { caller: call.caller }));
    });
    session.on("ended", () => finish(session, text.ended));
    session.on("failed", (ev) => {
      let note;
      if (ev.cause === JsSIP.C.causes.USER_DENIED_MEDIA_ACCESS) note = text.no_microphone;
      else if (ev.originator === "remote" && call && !call.answered) note = text.missed;
      else if (ev.originator === "local" && ev.cause === JsSIP.C.causes.CANCELED) note = text.ended;
      else note = fill(text.failed, { cause: ev.cause });
      finish(session, note);
    });
    ring.start();
    show("ringing", fill(text.incoming, { caller: call.caller }));
  }

  function finish(session, note) {
    if (!call || call.session !== session) return;
    ring.stop();
    call = null;
    audio.srcObject = null;
    showIdle(note);
  }

  answerButton.addEventListener("click", () => {
    if (!call || box.dataset.state !== "ringing") return;
    ring.stop();
    show("answering", text.answering);
    call.session.answer({
      mediaConstraints: { audio: true, video: false },
      pcConfig: { iceServers: [], bundlePolicy: "max-bundle", rtcpMuxPolicy: "require" },
    });
  });

  hangupButton.addEventListener("click", () => {
    if (call && !call.session.isEnded()) call.session.terminate();
  });

  window.addEventListener("pagehide", () => {
    // Unregister on the way out, so calls stop coming to a page that is gone.
    if (ua) ua.stop();
  });

  window.lianluoSoftphone = {
    state: () => box.dataset.state,
    async stats() {
      const pc = call && call.session.connection;
      if (!pc) return null;
      const out = { bytesReceived: 0, packetsReceived: 0, audioLevel: 0, totalAudioEnergy: 0, bytesSent: 0, packetsSent: 0 };
      (await pc.getStats()).forEach((s) => {
        if (s.kind !== "audio") return;
        if (s.type === "inbound-rtp") {
          out.bytesReceived += s.bytesReceived || 0;
          out.packetsReceived += s.packetsReceived || 0;
          out.audioLevel = Math.max(out.audioLevel, s.audioLevel || 0);
          out.totalAudioEnergy += s.totalAudioEnergy || 0;
        } else if (s.type === "outbound-rtp") {
          out.bytesSent += s.bytesSent || 0;
          out.packetsSent += s.packetsSent || 0;
        }
      });
      return out;
    },
  };

  if (typeof JsSIP === "undefined" || !window.RTCPeerConnection || !navigator.mediaDevices) {
    show("unavailable", text.unsupported);
    return;
  }
  function start() {
    account().then(register).catch((err) => {
      lastCause = String(err.message || err);
      showIdle();
    });
  }
  // One softphone per browser: a second panel tab registering too would take the calls
  // from the first, back and forth at every renewal. The lock passes on when a tab closes.
  const forever = () => new Promise(() => {});
  if (navigator.locks) {
    navigator.locks.request("lianluo-softphone", { ifAvailable: true }, (lock) => {
      if (lock) {
        start();
        return forever();
      }
      show("elsewhere", text.elsewhere);
      navigator.locks.request("lianluo-softphone", () => {
        start();
        return forever();
      });
      return null;
    });
  } else {
    start();
  }
})();
