// jamnet browser client: ES modules, no build step. ethers (UMD, served by the node) signs.
import { beatsOf, dbToGain } from "./format.js";
import { DataChannelAudio, lowLatencySupported } from "./lowlatency.js";
import { initial as initialStore, reduce } from "./store.js";

const $ = (sel) => document.querySelector(sel);

// The node's settings (GET /api/config replaces these defaults before anything starts): the
// stage's half-size (+y is the front), bitrates, frame sizes, limits.
const config = { frame_ms: 20, frame_sizes_ms: [], opus_lookahead_ms: 2.5, p2p: true,
                 transports: ["rtp"], browser_transport: "rtp", stage_half_m: 10,
                 uplink_bitrate_bps: 96000, downlink_bitrate_bps: 128000 };
const stageM = () => config.stage_half_m;
const BROWSER_LOOKAHEAD_MS = 6.5;   // the browser's own Opus encoder (not restricted-low-delay)
const state = {
  wallet: null, address: "", session: null, participant: null, token: "",
  pc: null, ws: null, stream: null, participants: new Map(), levels: {}, jitter: {},
  audioCtx: null, micAnalyser: null, mixAnalyser: null, recording: null, rtt: null,
  yaw: 0, pitch: 0, mix: new Map(), peaks: new Map(), drawing: false, recordingSince: null,
};
// Exposed for end-to-end tests (read-only use).
window.jamnet = state;

// The session as the node's events describe it: one store, changed only by the reducer
// (client/web/store.js). `state` mirrors it for the rest of the page and the tests.
let store = initialStore();
function dispatch(event) {
  store = reduce(store, event);
  state.session = store.session;
  state.participants = store.participants;
  state.levels = store.levels;
  state.jitter = store.jitter;
  state.lastBeat = store.lastBeat;
}
window.jamnetDispatch = dispatch;
const mine = () => state.participant && state.participants.get(state.participant.id);

// The room: everything a joined session starts (intervals, timeouts, the animation loop,
// window listeners, the peer connection, the event socket, the AudioContext and the
// microphone) is registered here and disposed of in one place when it is left: five joins
// and leaves leave nothing running.
const room = {
  timers: new Set(),
  listeners: [],
  every(fn, ms) { const id = setInterval(fn, ms); this.timers.add(id); return id; },
  later(fn, ms) {
    const id = setTimeout(() => { this.timers.delete(id); fn(); }, ms);
    this.timers.add(id);
    return id;
  },
  listen(target, type, fn) { target.addEventListener(type, fn); this.listeners.push([target, type, fn]); },
  unlisten(target, type, fn) {
    target.removeEventListener(type, fn);
    this.listeners = this.listeners.filter(([t, k, f]) => !(t === target && k === type && f === fn));
  },
  dispose() {
    for (const id of this.timers) { clearInterval(id); clearTimeout(id); }
    this.timers.clear();
    for (const [target, type, fn] of this.listeners) target.removeEventListener(type, fn);
    this.listeners = [];
    state.drawing = false;
    const ws = state.ws;
    state.ws = null;   // its close is ours: no reconnect
    if (ws) ws.close();
    if (state.dc) state.dc.close();
    if (state.pc) state.pc.close();
    if (state.audioCtx) state.audioCtx.close().catch(() => {});
    if (state.stream) state.stream.getTracks().forEach((t) => t.stop());
    $("#mix").srcObject = null;
  },
  live() { return this.timers.size + this.listeners.length + (state.drawing ? 1 : 0); },
};
const roomEvery = (fn, ms) => room.every(fn, ms);
const roomLater = (fn, ms) => room.later(fn, ms);
window.jamnetRoomTimers = () => room.live();

// ------------------------------------------------------------------ identity
async function loadIdentity() {
  if (window.ethereum && window.ethereum.request) {
    try {
      const provider = new ethers.BrowserProvider(window.ethereum);
      state.wallet = await provider.getSigner();
      state.address = await state.wallet.getAddress();
      $("#identity").textContent = state.address + " (wallet)";
      return;
    } catch (e) { console.warn("injected wallet refused; using a local key", e); }
  }
  let key = localStorage.getItem("jamnet.key");
  if (!key) {
    key = ethers.Wallet.createRandom().privateKey;   // never leaves this browser
    localStorage.setItem("jamnet.key", key);
  }
  state.wallet = new ethers.Wallet(key);
  state.address = state.wallet.address;
  $("#identity").textContent = state.address;
}

async function api(method, path, body, auth) {
  const headers = { "Content-Type": "application/json" };
  if (auth) headers.Authorization = "Bearer " + state.token;
  const res = await fetch(path, { method, headers, body: body ? JSON.stringify(body) : undefined });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(data.error || res.statusText);
  return data;
}

async function signed() {
  const ch = await api("POST", "/api/challenges", { address: state.address });
  const signature = await state.wallet.signMessage(ch.message);
  return { address: state.address, nonce: ch.nonce, signature };
}

function showError(e) { $("#error").textContent = e ? String(e.message || e) : ""; }
function setStatus(text) { $("#status").textContent = text; }

// --------------------------------------------------------------------- lobby
async function refreshSessions() {
  try {
    const { sessions } = await api("GET", "/api/sessions");
    const list = $("#session-list");
    list.replaceChildren();
    if (!sessions.length) list.innerHTML = '<li class="empty">none yet</li>';
    for (const s of sessions) {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.textContent = "Join";
      b.onclick = () => join(s.id, null, $("#join-form").display.value).catch(showError);
      li.append(b, ` ${s.name} — ${s.tempo_bpm} BPM, ${s.key}, ${s.time_signature} — ${s.participants.length}/${s.max_participants}`);
      list.append(li);
    }
    await listNetworkSessions(list, new Set(sessions.map((s) => s.id)));
  } catch (e) { showError(e); }
}

// Public sessions on the other nodes of the network (GET /api/directory; absent without p2p).
async function listNetworkSessions(list, local) {
  if (!config.p2p) return;
  let entries;
  try { entries = (await api("GET", "/api/directory")).sessions; } catch (e) { return; }
  for (const s of entries) {
    if (local.has(s.id)) continue;
    list.querySelector(".empty")?.remove();
    const li = document.createElement("li");
    li.className = "remote";
    // Joining here bridges the session from its host (you play through this node);
    // "its node" opens the host's own page instead.
    const here = document.createElement("button");
    here.type = "button";
    here.textContent = "Join through this node";
    here.onclick = () => { $("#join-form").session.value = s.id; $("#join-form").requestSubmit(); };
    const a = document.createElement("a");
    a.href = `${s.node}?session=${encodeURIComponent(s.id)}`;
    a.textContent = "open on its node";
    li.append(here, " ", a, ` ${s.name} — ${s.tempo_bpm} BPM, ${s.key}, ${s.time_signature} — ${s.participants} playing — hosted on ${s.node}`);
    list.append(li);
  }
}

{
  const wanted = new URLSearchParams(location.search).get("session");
  if (wanted) $("#join-form").session.value = wanted;   // arrived from another node's lobby
}

$("#create-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = ev.target;
  try {
    showError(null);
    const session = await api("POST", "/api/sessions", {
      name: f.name.value, tempo_bpm: Number(f.tempo_bpm.value), key: f.key.value,
      time_signature: f.time_signature.value, private: f.private.checked,
      frame_ms: Number(f.frame_ms.value), ...(await signed()),
    });
    await join(session.id, null, f.display.value);
  } catch (e) { showError(e); }
});

$("#join-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = ev.target;
  try { showError(null); await join(f.session.value.trim(), f.invite.value.trim() || null, f.display.value); }
  catch (e) { showError(e); }
});

// ------------------------------------------------------------------- joining
async function join(sessionId, invite, name) {
  const body = { name: name || "musician", ...(await signed()) };
  if (invite) body.invite = invite;
  const joined = await api("POST", `/api/sessions/${sessionId}/join`, body);
  state.token = joined.token;
  state.participant = joined.participant;
  setSession(joined.session);
  $("#lobby").hidden = true;
  $("#room").hidden = false;
  openEvents();
  startPings();
  roomEvery(tickRecording, 1000);
  await startMedia();
  // Start somewhere on the stage that is not on top of everyone else.
  const angle = Math.random() * Math.PI * 2;
  // ... facing the middle of the stage, with this page's mix settings.
  const x = round(4 * Math.cos(angle)), y = round(4 * Math.sin(angle));
  state.yaw = Math.round(Math.atan2(-x, -y) * 1800 / Math.PI) / 10; state.pitch = 0;
  dispatch({ type: "moved", participant: state.participant.id, x, y });
  dispatch({ type: "turned", participant: state.participant.id, yaw_deg: state.yaw, pitch_deg: 0 });
  showFacing();
  sendControl({ type: "pose", x, y, yaw_deg: state.yaw, pitch_deg: 0 });
  sendRender();
}

function round(v) { return Math.round(v * 100) / 100; }

function setSession(session) {
  dispatch({ type: "session", session });
  $("#room-name").textContent = session.name;
  const room = session.room
    ? ` · room ${session.room.width_m}×${session.room.depth_m}×${session.room.height_m} m, RT60 ${session.room.rt60_s} s`
    : " · no room";
  $("#room-meta").textContent = `${session.tempo_bpm} BPM · ${session.key} · ${session.time_signature} · ${session.frame_ms} ms frames` +
    (session.chords ? ` · chords ${session.chords}` : "") +
    (session.private ? " · private" : "") + room + ` · id ${session.id}`;
  const owner = session.owner.toLowerCase() === state.address.toLowerCase();
  $("#owner-tools").hidden = !owner;
  $("#tempo").value = session.tempo_bpm;
  showRecording(session.recording);
  renderBeats(session.time_signature);
  renderParticipants();
  if (window.jamnetAi) window.jamnetAi.onSession(session);
}

// --------------------------------------------------------------------- media
function withOpusParams(sdp, params) {
  const m = sdp.match(/a=rtpmap:(\d+) opus\/48000\/2/i);
  if (!m) return sdp;
  const pt = m[1];
  const re = new RegExp(`a=fmtp:${pt} (.*)`);
  const line = sdp.match(re);
  const current = {};
  if (line) for (const kv of line[1].trim().split(";")) { const [k, v] = kv.split("="); if (k) current[k.trim()] = v; }
  Object.assign(current, params);
  const fmtp = `a=fmtp:${pt} ` + Object.entries(current).map(([k, v]) => `${k}=${v}`).join(";");
  return line ? sdp.replace(re, fmtp) : sdp.replace(m[0], m[0] + "\r\n" + fmtp);
}

// A small number asks for the shortest output buffer the device allows (here 11 ms against
// 42 ms for "interactive", which headless Chromium's default device maps to 30 ms + 10 ms).
const OUTPUT_LATENCY_HINT = 0.001;

function chooseTransport() {
  const wanted = new URLSearchParams(location.search).get("transport") || config.browser_transport;
  const lowLatency = lowLatencySupported();
  return wanted === "datachannel" && lowLatency && (config.transports || []).includes("datachannel")
    ? "datachannel" : "rtp";
}

function connectMix(node) {
  state.mixSource = node;
  state.mixAnalyser = state.audioCtx.createAnalyser();
  state.mixAnalyser.fftSize = 2048;
  node.connect(state.mixAnalyser);
  node.connect(state.audioCtx.destination);
}

async function startMedia() {
  // Music, not speech: no echo cancellation, noise suppression or automatic gain.
  state.stream = await navigator.mediaDevices.getUserMedia({
    audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false,
             channelCount: 1, sampleRate: 48000 },
  });
  state.audioCtx = new AudioContext({ sampleRate: 48000, latencyHint: OUTPUT_LATENCY_HINT });
  await state.audioCtx.resume().catch(() => {});
  state.micAnalyser = state.audioCtx.createAnalyser();
  state.micAnalyser.fftSize = 1024;
  state.audioCtx.createMediaStreamSource(state.stream).connect(state.micAnalyser);

  const pc = new RTCPeerConnection({ iceServers: [] });
  state.pc = pc;
  state.transport = chooseTransport();
  let sender = null;
  if (state.transport === "datachannel") {
    state.dc = new DataChannelAudio(
      state.audioCtx, state.stream, state.session.frame_ms, config.uplink_bitrate_bps);
    connectMix(await state.dc.prepare(pc));
  } else {
    const [track] = state.stream.getAudioTracks();
    sender = pc.addTrack(track, state.stream);
    pc.ontrack = (ev) => {
      const stream = ev.streams[0] || new MediaStream([ev.track]);
      // The element only keeps Chromium pulling the stream; the mix plays through the
      // AudioContext, whose output buffer is the short one asked for above.
      $("#mix").srcObject = stream;
      $("#mix").muted = true;
      connectMix(state.audioCtx.createMediaStreamSource(stream));
    };
  }
  pc.onconnectionstatechange = () => setStatus(`audio (${state.transport}): ${pc.connectionState}`);
  const offer = await pc.createOffer();
  // stereo=1: we want the node's stereo mix; maxaveragebitrate: room for music.
  offer.sdp = withOpusParams(offer.sdp, { stereo: 1, "sprop-stereo": 0, maxaveragebitrate: config.downlink_bitrate_bps, useinbandfec: 1 });
  await pc.setLocalDescription(offer);
  await waitForIce(pc);
  const answer = await api("POST", `/api/sessions/${state.session.id}/rtc`,
                           { type: "offer", sdp: pc.localDescription.sdp, transport: state.transport }, true);
  await pc.setRemoteDescription(answer);
  if (sender) {
    const params = sender.getParameters();
    if (params.encodings && params.encodings.length) {
      params.encodings[0].maxBitrate = config.uplink_bitrate_bps;
      await sender.setParameters(params).catch(() => {});
    }
  }
  state.drawing = true;
  requestAnimationFrame(drawLoop);
  roomEvery(pollStats, 1000);
}

function waitForIce(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { if (pc.iceGatheringState === "complete") resolve(); };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, 3000);   // host candidates arrive fast; don't wait for ever
  });
}

// An estimate of mouth-to-ear delay for what you hear, and its parts (ms):
// capture = a packet's wait to be complete + the encoder's look-ahead + the input device;
// network = the selected candidate pair's round trip (one way up from the other musician,
// one way down to you); node = its jitter buffer and mixing for the streams you hear (as it
// measures them) + its encoder's look-ahead; browser = this browser's receive buffer
// (getStats jitterBufferDelay / jitterBufferEmittedCount, over the last second);
// output = the audio output's latency.
async function pollStats() {
  if (!state.pc) return;
  const stats = await state.pc.getStats();
  let transport = null, inbound = null;
  stats.forEach((s) => {
    if (s.type === "transport") transport = s;
    if (s.type === "inbound-rtp" && s.kind === "audio") inbound = s;
  });
  let pair = transport && transport.selectedCandidatePairId ? stats.get(transport.selectedCandidatePairId) : null;
  if (!pair) stats.forEach((s) => { if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") pair = s; });
  state.rtt = pair && pair.currentRoundTripTime !== undefined ? pair.currentRoundTripTime * 1000 : null;
  let buffer = state.browserBufferMs ?? null;
  if (inbound && inbound.jitterBufferEmittedCount !== undefined) {
    const prev = state.prevInbound;
    if (prev && inbound.jitterBufferEmittedCount > prev.emitted) {
      buffer = 1000 * (inbound.jitterBufferDelay - prev.delay) / (inbound.jitterBufferEmittedCount - prev.emitted);
    }
    state.prevInbound = { delay: inbound.jitterBufferDelay, emitted: inbound.jitterBufferEmittedCount };
  }
  state.browserBufferMs = buffer;
  const me = state.participant && state.participant.id;
  const mine = me && state.jitter[me];
  const others = Object.entries(state.jitter).filter(([id]) => id !== me).map(([, f]) => f);
  const nodeAdded = others.length ? others.reduce((a, f) => a + f.node_added_ms, 0) / others.length : 0;
  const packetMs = mine && mine.packet_ms ? mine.packet_ms : (state.session ? state.session.frame_ms : 20);
  const [track] = state.stream ? state.stream.getAudioTracks() : [];
  const inputLatency = track && track.getSettings().latency ? track.getSettings().latency * 1000 : 0;
  const ctx = state.audioCtx;
  const playout = state.dc && state.dc.stats.playout;
  if (state.transport === "datachannel") buffer = playout ? playout.wait_ms : null;
  const lookahead = state.transport === "datachannel" ? config.opus_lookahead_ms : BROWSER_LOOKAHEAD_MS;
  const parts = {
    capture: packetMs + lookahead + inputLatency,
    network: state.rtt ?? 0,
    node: nodeAdded + config.opus_lookahead_ms,
    browser: buffer ?? 0,
    output: ctx ? ((ctx.outputLatency || 0) + (ctx.baseLatency || 0)) * 1000 : 0,
  };
  const total = Object.values(parts).reduce((a, b) => a + b, 0);
  const dominant = Object.keys(parts).reduce((a, b) => (parts[b] > parts[a] ? b : a));
  state.latency = { total_ms: total, parts_ms: parts, dominant, packet_ms: packetMs, transport: state.transport,
                    measured: { network: state.rtt != null, browser: buffer != null, node: others.length > 0 } };
  const label = { capture: "capture", network: "network", node: "node", browser: "browser buffer", output: "output" };
  $("#latency").textContent = `latency ≈ ${total.toFixed(0)} ms mouth to ear: ` +
    Object.entries(parts).map(([k, v]) => `${label[k]} ${v.toFixed(1)}`).join(" · ") +
    ` ms — ${label[dominant]} dominates`;
}

// -------------------------------------------------------------------- events
function openEvents(attempt = 0) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const session = state.session;
  const ws = new WebSocket(`${scheme}://${location.host}/api/sessions/${session.id}/events?token=${encodeURIComponent(state.token)}`);
  state.ws = ws;
  let opened = false;
  // A new socket's first message is the session as it is now, and the events follow it in
  // order: that is the resynchronisation (a separate GET could answer after newer events).
  ws.onopen = () => { opened = true; setStatus("connected"); };
  ws.onmessage = (ev) => handleEvent(JSON.parse(ev.data));
  ws.onclose = (ev) => {
    if (state.ws !== ws || !state.session) return;   // left, or replaced
    if (!opened && attempt >= 2) { checkStillThere(); }
    // The node ends our socket when we are out (left elsewhere, removed, the session closed);
    // "too slow" or a dropped connection is worth a reconnect.
    if (ev.code === 1001 && ev.reason && ev.reason !== "too slow") {
      showError(`you are no longer in the session: ${ev.reason}`);
      leave(true);
      return;
    }
    const delay = Math.min(10000, 500 * 2 ** Math.min(attempt, 5));
    setStatus(`events lost: reconnecting in ${(delay / 1000).toFixed(1)} s`);
    roomLater(() => { if (state.session && state.ws === ws) openEvents(attempt + 1); }, delay);
  };
}

// The socket keeps failing to open: is the session (and our place in it) still there?
async function checkStillThere() {
  try {
    await api("GET", `/api/sessions/${state.session.id}`);
  } catch (e) {
    if (/no session/i.test(String(e.message || e))) {
      showError(`the session is gone: ${e.message || e}`);
      leave(true);
    }
  }
}

function startPings() {
  roomEvery(() => {
    if (state.ws && state.ws.readyState === 1) state.ws.send(JSON.stringify({ type: "ping", t: performance.now() }));
  }, 2000);
}

function handleEvent(e) {
  if (e.type === "session") { setSession(e.session); return; }
  dispatch(e);
  switch (e.type) {
    case "joined": case "participant": renderParticipants(); break;
    case "left":
      if (state.participant && e.participant === state.participant.id) leave(true);
      renderParticipants(); break;
    case "levels": updateLevels(); break;
    case "beat": showBeat(e.bar_beat); break;
    case "chat": addChat(e); break;
    case "recording": showRecording(e.recording); break;
    case "closed": leave(true); break;
    case "error": showError(e.error); break;
    case "pong": if (typeof e.t === "number") state.socketRttMs = performance.now() - e.t; break;
    case "prove": proveAddress(e); break;
    default: break;
  }
}

// A bridged session's hosting node asks us to prove our address: sign its challenge (only a
// bridge-proof text) and give the signature to our node, which relays it.
async function proveAddress(e) {
  if (!state.participant || e.participant !== state.participant.id) return;
  if (typeof e.message !== "string" || !e.message.startsWith("jamnet bridge proof\n")) return;
  try {
    const signature = await state.wallet.signMessage(e.message);
    await api("POST", `/api/sessions/${state.session.id}/proof`, { signature }, true);
  } catch (err) { console.warn("address proof not sent", err); }
}

function sendControl(msg) {
  if (state.ws && state.ws.readyState === 1) state.ws.send(JSON.stringify(msg));
  else api("POST", `/api/sessions/${state.session.id}/control`, msg, true).catch(showError);
}

// ---------------------------------------------------------------------- room
// Channel strips are keyed by participant id: a strip keeps its element, its fader and its
// mute/solo state through joins, leaves and setting changes; what it shows is refreshed.
function mixOf(id) {
  if (!state.mix.has(id)) state.mix.set(id, { gainDb: 0, muted: false, solo: false });
  return state.mix.get(id);
}

function sendMix() {   // my mix: solo wins over everything not soloed
  const soloing = [...state.mix.values()].some((m) => m.solo);
  for (const [id, m] of state.mix) {
    if (!state.participants.has(id) || (state.participant && id === state.participant.id)) continue;
    const muted = m.muted || (soloing && !m.solo);
    sendControl({ type: "gain", source: id, gain: dbToGain(m.gainDb), muted });
  }
}

function strip(p) {
  const li = document.createElement("li");
  li.dataset.id = p.id;
  const name = document.createElement("span");
  name.className = "name";
  const meter = document.createElement("div");
  meter.className = "meter";
  meter.append(document.createElement("div"), Object.assign(document.createElement("b"), { className: "peak" }));
  const quality = document.createElement("span");
  quality.className = "quality";
  li.append(name, meter, quality);
  if (!(state.participant && p.id === state.participant.id)) {
    const m = mixOf(p.id);
    const fader = document.createElement("label");
    fader.className = "fader";
    const vol = Object.assign(document.createElement("input"),
      { type: "range", min: -40, max: 6, step: 0.5, value: m.gainDb, className: "gain" });
    vol.setAttribute("aria-label", `${p.name}: level in your mix, dB`);
    const db = Object.assign(document.createElement("output"), { className: "db" });
    const showDb = () => { db.textContent = `${m.gainDb > 0 ? "+" : ""}${m.gainDb.toFixed(1)} dB`; };
    showDb();
    vol.oninput = () => { m.gainDb = Number(vol.value); showDb(); sendMix(); };
    fader.append(vol, db);
    const toggle = (key, label) => {
      const box = document.createElement("label");
      box.className = key;
      const input = Object.assign(document.createElement("input"), { type: "checkbox", checked: m[key] });
      input.onchange = () => { m[key] = input.checked; sendMix(); };
      box.append(input, label);
      return box;
    };
    li.append(fader, toggle("muted", "mute"), toggle("solo", "solo"));
  }
  return li;
}

function renderParticipants() {
  const list = $("#participants");
  const owner = state.session && state.session.owner.toLowerCase() === state.address.toLowerCase();
  const seen = new Set();
  for (const p of state.participants.values()) {
    seen.add(p.id);
    let li = list.querySelector(`li[data-id="${CSS.escape(p.id)}"]`);
    if (!li) { li = strip(p); list.append(li); }
    const me = state.participant && p.id === state.participant.id;
    const name = li.querySelector(".name");
    name.textContent = p.name + (me ? " (you)" : "") + (p.connected ? "" : " …") +
      (p.verified === false ? " (unverified)" : "") + (p.kind === "ai" ? " (AI)" : "");
    name.title = p.verified === false
      ? "connected through another node and has not proven their address yet: no share of recordings" : "";
    name.classList.toggle("me", !!me);
    let kick = li.querySelector("button.remove");
    if (owner && !me && !kick) {
      kick = Object.assign(document.createElement("button"), { textContent: "remove", className: "remove", type: "button" });
      kick.setAttribute("aria-label", `remove ${p.name} from the session`);
      kick.onclick = () => api("DELETE", `/api/sessions/${state.session.id}/participants/${p.id}`, null, true).catch(showError);
      li.append(kick);
    } else if (!owner && kick) kick.remove();
  }
  for (const li of [...list.children]) {
    if (!seen.has(li.dataset.id)) { state.mix.delete(li.dataset.id); li.remove(); }
  }
}

function updateLevels() {
  const now = performance.now();
  for (const li of $("#participants").children) {
    const id = li.dataset.id;
    const level = Math.min(100, Math.sqrt(state.levels[id] || 0) * 140);
    const bar = li.querySelector(".meter > div");
    if (bar) bar.style.width = level + "%";
    const peak = state.peaks.get(id);   // peak hold: 1.5 s, then it falls
    if (!peak || level >= peak.level || now - peak.at > 1500) state.peaks.set(id, { level, at: now });
    const mark = li.querySelector(".meter > .peak");
    if (mark) mark.style.left = `calc(${state.peaks.get(id).level}% - 2px)`;
    const f = state.jitter[id];
    const quality = li.querySelector(".quality");
    if (quality) {
      const total = (f && (f.played + f.concealed)) || 0;
      const p = state.participants.get(id);
      const where = p ? `at ${Number(p.x).toFixed(1)}, ${Number(p.y).toFixed(1)} m` : "";
      quality.textContent = (f ? `buffer ${Number(f.delay_ms).toFixed(0)} ms · ` +
        `${total ? (100 * f.concealed / total).toFixed(1) : "0.0"} % concealed · ` : "") + where;
    }
  }
}

function showRecording(recording) {
  if (recording && !state.recording) state.recordingSince = Date.now();
  if (!recording) state.recordingSince = null;
  state.recording = recording;
  $("#record").textContent = recording ? "Stop recording" : "Start recording";
  $("#rec").hidden = !recording;
  tickRecording();
}

function tickRecording() {
  if (!state.recordingSince) return;
  const s = Math.floor((Date.now() - state.recordingSince) / 1000);
  $("#rec-time").textContent = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

// One dot per beat of the session's metre (3/4: three, 7/8: seven), the downbeat marked.
function renderBeats(timeSignature) {
  const beats = beatsOf(timeSignature);
  const box = $("#beat");
  if (box.children.length === beats) return;
  box.replaceChildren(...Array.from({ length: beats }, () => document.createElement("i")));
  box.setAttribute("aria-label", `beat, ${timeSignature}`);
}

function showBeat(barBeat) {
  const dots = $("#beat").children;
  for (let i = 0; i < dots.length; i++) dots[i].className = "";
  const dot = dots[barBeat % dots.length];
  dot.className = "on" + (barBeat === 0 ? " down" : "");
  state.lastBeat = barBeat;
}

function addChat(e) {
  const li = document.createElement("li");
  li.textContent = `${e.name}: ${e.text}`;
  $("#chat").append(li);
  li.scrollIntoView({ block: "nearest" });
}

$("#chat-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const text = ev.target.text.value.trim();
  if (text) sendControl({ type: "chat", text });
  ev.target.text.value = "";
});
$("#click").onchange = (ev) => sendControl({ type: "click", on: ev.target.checked });
$("#input-gain").oninput = (ev) => {
  const db = Number(ev.target.value);
  $("#input-gain-db").textContent = `${db > 0 ? "+" : ""}${db.toFixed(1)} dB`;
  sendControl({ type: "input_gain", gain: dbToGain(db) });
};
$("#monitor").onchange = (ev) => sendControl({ type: "monitor", on: ev.target.checked });
$("#leave").onclick = () => leave(false);
$("#record").onclick = () => api("POST", `/api/sessions/${state.session.id}/recording`,
  { action: state.recording ? "stop" : "start" }, true).catch(showError);
$("#tempo").onchange = (ev) => api("PATCH", `/api/sessions/${state.session.id}`,
  { tempo_bpm: Number(ev.target.value) }, true).catch(showError);
$("#make-invite").onclick = async () => {
  const expires = Math.floor(Date.now() / 1000) + 24 * 3600;
  const message = `jamnet invite\nsession: ${state.session.id}\ninvitee: *\nexpires: ${expires}`;
  const sig = await state.wallet.signMessage(message);
  const json = JSON.stringify({ s: state.session.id, i: "*", e: expires, sig });
  $("#invite-out").value = btoa(json).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
};

async function leave(kicked) {
  const session = state.session;
  const token = state.token;
  room.dispose();
  $("#device-orientation").checked = false;
  if (session && token && !kicked) await api("POST", `/api/sessions/${session.id}/leave`, null, true).catch(() => {});
  store = initialStore();
  dispatch({ type: "reset" });
  Object.assign(state, { pc: null, ws: null, stream: null, dc: null, audioCtx: null, mixSource: null,
                         micAnalyser: null, mixAnalyser: null, token: "", session: null, participant: null,
                         recording: null, recordingSince: null });
  $("#rec").hidden = true;
  $("#room").hidden = true;
  $("#lobby").hidden = false;
  refreshSessions();
}

// --------------------------------------------------------------------- stage
const stage = $("#stage");
const ctx2d = stage.getContext("2d");
const toPx = (m) => ((m + stageM()) / (2 * stageM())) * stage.width;
const toM = (px) => (px / stage.width) * 2 * stageM() - stageM();
let dragging = false;

function stagePoint(ev) {
  const r = stage.getBoundingClientRect();
  const x = toM(((ev.clientX - r.left) / r.width) * stage.width);
  const y = -toM(((ev.clientY - r.top) / r.height) * stage.height);   // screen y grows downwards
  return { x: round(Math.max(-stageM(), Math.min(stageM(), x))), y: round(Math.max(-stageM(), Math.min(stageM(), y))) };
}
let lastPoseSent = 0;
function moveMe(ev) {
  if (!state.participant) return;
  const p = stagePoint(ev);
  dispatch({ type: "moved", participant: state.participant.id, x: p.x, y: p.y });
  const now = performance.now();
  if (now - lastPoseSent > 40) { lastPoseSent = now; sendControl({ type: "pose", ...p }); }
}
function pointerOnStage(ev) { if (ev.shiftKey) faceTowards(ev); else moveMe(ev); }
stage.addEventListener("pointerdown", (ev) => { dragging = true; stage.setPointerCapture(ev.pointerId); pointerOnStage(ev); });
stage.addEventListener("pointermove", (ev) => { if (dragging) pointerOnStage(ev); });
stage.addEventListener("pointerup", (ev) => { dragging = false; pointerOnStage(ev); });

// ------------------------------------------------------------ facing (yaw/pitch)
const wrapDeg = (d) => ((((d + 180) % 360) + 360) % 360) - 180;
let lastTurnSent = 0, turnTimer = null;
function turn(yaw, pitch) {
  state.yaw = Math.round(wrapDeg(yaw) * 10) / 10;
  state.pitch = Math.round(Math.max(-90, Math.min(90, pitch)) * 10) / 10;
  showFacing();
  if (state.participant) {
    dispatch({ type: "turned", participant: state.participant.id, yaw_deg: state.yaw, pitch_deg: state.pitch });
  }
  const send = () => { lastTurnSent = performance.now(); sendControl({ type: "pose", yaw_deg: state.yaw, pitch_deg: state.pitch }); };
  clearTimeout(turnTimer);
  if (performance.now() - lastTurnSent > 50) send(); else turnTimer = setTimeout(send, 60);
}
function showFacing() { $("#facing").textContent = `facing: ${state.yaw}° · pitch ${state.pitch}°`; }
function faceTowards(ev) {
  const me = mine();
  if (!me) return;
  const p = stagePoint(ev);
  if (Math.hypot(p.x - me.x, p.y - me.y) < 0.2) return;
  turn(Math.atan2(p.x - me.x, p.y - me.y) * 180 / Math.PI, state.pitch);
}
document.addEventListener("keydown", (ev) => {
  const focus = document.activeElement;
  const typing = focus && (focus.tagName === "TEXTAREA" || (focus.tagName === "INPUT" && !["checkbox", "button"].includes(focus.type)));
  if (!state.participant || typing) return;
  const step = ev.shiftKey ? 45 : 15;
  // Move with W A S D (Shift: 2 m steps), turn and look with the arrows.
  const move = { w: [0, 1], s: [0, -1], a: [-1, 0], d: [1, 0] }[ev.key.toLowerCase()];
  if (move && !ev.ctrlKey && !ev.metaKey && !ev.altKey) {
    const me = mine();
    if (!me) return;
    const metres = ev.shiftKey ? 2 : 0.5;
    const clamp = (v) => round(Math.max(-stageM(), Math.min(stageM(), v)));
    const x = clamp(me.x + move[0] * metres), y = clamp(me.y + move[1] * metres);
    dispatch({ type: "moved", participant: me.id, x, y });
    sendControl({ type: "pose", x, y });
    ev.preventDefault();
    return;
  }
  if (ev.key === "ArrowLeft") turn(state.yaw - step, state.pitch);
  else if (ev.key === "ArrowRight") turn(state.yaw + step, state.pitch);
  else if (ev.key === "ArrowUp") turn(state.yaw, state.pitch + 10);
  else if (ev.key === "ArrowDown") turn(state.yaw, state.pitch - 10);
  else return;
  ev.preventDefault();
});
let headingZero = null;
function onDeviceOrientation(ev) {
  if (ev.alpha === null) return;
  if (headingZero === null) headingZero = ev.alpha + state.yaw;
  // alpha grows counter-clockwise seen from above; yaw grows clockwise.
  const pitch = ev.beta === null ? state.pitch : Math.max(-90, Math.min(90, ev.beta - 90));
  turn(headingZero - ev.alpha, pitch);
}
$("#device-orientation").onchange = async (ev) => {
  headingZero = null;
  if (!ev.target.checked) { room.unlisten(window, "deviceorientation", onDeviceOrientation); return; }
  try {
    if (typeof DeviceOrientationEvent !== "undefined" && DeviceOrientationEvent.requestPermission) {
      if (await DeviceOrientationEvent.requestPermission() !== "granted") throw new Error("orientation permission denied");
    }
    if (typeof DeviceOrientationEvent === "undefined") throw new Error("this browser has no device orientation");
    room.listen(window, "deviceorientation", onDeviceOrientation);
  } catch (e) { ev.target.checked = false; showError(e); }
};
function sendRender() {
  sendControl({ type: "render", binaural: $("#binaural").checked, room: $("#room-on").checked });
}
$("#binaural").onchange = sendRender;
$("#room-on").onchange = sendRender;
$("#set-room").onclick = () => {
  const f = $("#room-form");
  const room = {};
  for (const k of ["width_m", "depth_m", "height_m", "absorption"]) room[k] = Number(f.querySelector(`[name=${k}]`).value);
  api("PATCH", `/api/sessions/${state.session.id}`, { room }, true).then(setSession).catch(showError);
};
$("#no-room").onclick = () => api("PATCH", `/api/sessions/${state.session.id}`, { room: null }, true).then(setSession).catch(showError);

function drawStage() {
  const w = stage.width;
  ctx2d.clearRect(0, 0, w, w);
  ctx2d.strokeStyle = "#262a36";
  for (let m = -stageM(); m <= stageM(); m += stageM() / 4) {
    ctx2d.beginPath(); ctx2d.moveTo(toPx(m), 0); ctx2d.lineTo(toPx(m), w); ctx2d.stroke();
    ctx2d.beginPath(); ctx2d.moveTo(0, toPx(m)); ctx2d.lineTo(w, toPx(m)); ctx2d.stroke();
  }
  ctx2d.fillStyle = "#9094a4"; ctx2d.font = "12px system-ui"; ctx2d.fillText("front ↑", w / 2 - 20, 14);
  const room = state.session && state.session.room;
  if (room) {   // the room's walls, centred on the stage
    ctx2d.strokeStyle = "#6b5a2e"; ctx2d.lineWidth = 2;
    ctx2d.strokeRect(toPx(-room.width_m / 2), toPx(-room.depth_m / 2), toPx(room.width_m / 2) - toPx(-room.width_m / 2),
      toPx(room.depth_m / 2) - toPx(-room.depth_m / 2));
    ctx2d.lineWidth = 1;
  }
  const labels = [];
  for (const p of state.participants.values()) {
    const me = state.participant && p.id === state.participant.id;
    const level = state.levels[p.id] || 0;
    const x = toPx(p.x), y = toPx(-p.y);
    ctx2d.beginPath();
    ctx2d.arc(x, y, 9 + Math.min(14, Math.sqrt(level) * 40), 0, Math.PI * 2);
    ctx2d.fillStyle = me ? "rgba(90,209,164,.35)" : "rgba(160,170,255,.3)";
    ctx2d.fill();
    ctx2d.beginPath(); ctx2d.arc(x, y, 7, 0, Math.PI * 2);
    ctx2d.fillStyle = me ? "#5ad1a4" : "#a0aaff"; ctx2d.fill();
    const yaw = ((p.yaw_deg || 0) * Math.PI) / 180;   // facing arrow (screen y grows downwards)
    ctx2d.beginPath(); ctx2d.moveTo(x, y); ctx2d.lineTo(x + 20 * Math.sin(yaw), y - 20 * Math.cos(yaw));
    ctx2d.strokeStyle = me ? "#5ad1a4" : "#a0aaff"; ctx2d.lineWidth = 2; ctx2d.stroke(); ctx2d.lineWidth = 1;
    labels.push({ name: p.name, x: x + 10, y: y - 8 });
  }
  // Names never overlap: a label that would cover one already drawn moves down a line.
  const placed = [];
  ctx2d.fillStyle = "#e8e8ec";
  for (const label of labels) {
    const w = ctx2d.measureText(label.name).width;
    let y = label.y;
    while (placed.some((r) => label.x < r.x + r.w && r.x < label.x + w && Math.abs(r.y - y) < 13)) y += 13;
    placed.push({ x: label.x, y, w });
    ctx2d.fillText(label.name, label.x, y);
  }
}

function rms(analyser) {
  if (!analyser) return 0;
  const buf = new Float32Array(analyser.fftSize);
  analyser.getFloatTimeDomainData(buf);
  let sum = 0;
  for (const v of buf) sum += v * v;
  return Math.sqrt(sum / buf.length);
}

// The meters and the stage at the screen's rate cost the page's main thread about a third of
// a core in headless Chromium (a phone pays it in battery), and every millisecond of it could
// hold back the audio path's packets. So the meters move 20 times a second, a meter's width is
// written only when it changed, and the stage is redrawn only when something on it did.
const METER_EVERY_MS = 50;
let lastMeters = -Infinity, lastStage = "";
const meterWidths = new Map();

function setMeter(selector, level) {
  const width = Math.min(100, Math.round(Math.sqrt(level) * 140));
  if (meterWidths.get(selector) === width) return;
  meterWidths.set(selector, width);
  $(selector).style.width = width + "%";
}

// Everything drawStage reads, as one string: equal strings draw the same picture.
function stageSignature() {
  const people = [];
  for (const p of state.participants.values()) {
    people.push([p.id, p.name, p.x, p.y, p.yaw_deg, Math.round(Math.sqrt(state.levels[p.id] || 0) * 40)]);
  }
  const me = state.participant && state.participant.id;
  return JSON.stringify([stage.width, stageM(), state.session && state.session.room, me, people]);
}

function drawLoop(now) {
  if (!state.session || !state.drawing) { state.drawing = false; return; }
  if (!(now - lastMeters < METER_EVERY_MS)) {
    lastMeters = now;
    state.micLevel = rms(state.micAnalyser);
    state.mixLevel = rms(state.mixAnalyser);
    setMeter("#mic-meter", state.micLevel);
    setMeter("#master-meter", state.mixLevel);
  }
  const signature = stageSignature();
  if (signature !== lastStage) { lastStage = signature; drawStage(); }
  requestAnimationFrame(drawLoop);
}

async function loadConfig() {
  try { Object.assign(config, await api("GET", "/api/config")); } catch (e) { return; }
  for (const input of document.querySelectorAll("input[name=display]")) input.maxLength = config.name_max;
  $("#chat-form").text.maxLength = config.chat_max;
  const select = $("#frame-ms");
  select.replaceChildren();
  for (const { frame_ms, max_participants } of config.frame_sizes_ms) {
    const option = document.createElement("option");
    option.value = frame_ms;
    option.textContent = `${frame_ms} ms (up to ${max_participants} musicians)`;
    option.selected = frame_ms === config.frame_ms;
    select.append(option);
  }
}

// Views: the room (lobby and session), works, governance; one shows at a time.
function showView(name) {
  $("main").dataset.view = name;
  for (const b of document.querySelectorAll("#tabs button")) {
    if (b.dataset.view === name) b.setAttribute("aria-current", "page"); else b.removeAttribute("aria-current");
  }
  if (name === "works" && window.renderTakes) window.renderTakes().catch(() => {});
}
for (const b of document.querySelectorAll("#tabs button")) b.onclick = () => showView(b.dataset.view);

loadConfig().then(loadIdentity).then(refreshSessions).catch(showError);
setInterval(() => { if (!state.session) refreshSessions(); }, 5000);

export { $, api, config, setSession, showError, state };
