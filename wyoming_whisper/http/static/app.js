// The try-it page: models, microphone (WebSocket with partials), upload (verbose_json), results.
// Plain JS, no dependencies. Every URL is relative to the page, so it works behind a path prefix
// (Home Assistant ingress serves it at /api/hassio_ingress/<token>/).
"use strict";

const $ = (id) => document.getElementById(id);
const KEY_STORE = "wyoming-whisper.api-key";
const POLL_MS = 3000;
const RATE = 16000; // what the WebSocket takes: 16 kHz, 16-bit, mono
const EOS = new Uint8Array([0x45, 0x4f, 0x53]);

const ui = {
  models: [], // from ./v1/models
  health: null, // from ./health
  result: null, // the last transcript, verbose_json shape
  audioUrl: null, // object URL of the audio the result came from
  stopAt: null, // where the player pauses after a segment
  recorder: null,
};

function resolve(path) {
  return new URL(path, document.baseURI);
}

function setStatus(status) {
  document.body.dataset.status = status;
}

// --- API key: asked once on a 401, kept in this tab -------------------------------------------

function apiKey() {
  return sessionStorage.getItem(KEY_STORE) || "";
}

function authHeaders() {
  const key = apiKey();
  return key ? { Authorization: "Bearer " + key } : {};
}

let keyWaiter = null;

function askForKey(refused) {
  if (!keyWaiter) {
    keyWaiter = new Promise((done) => {
      const form = $("key-form");
      form.hidden = false;
      $("key-error").textContent = refused ? "That key was refused; try again." : "";
      $("api-key").focus();
      form.onsubmit = (event) => {
        event.preventDefault();
        sessionStorage.setItem(KEY_STORE, $("api-key").value.trim());
        form.hidden = true;
        keyWaiter = null;
        done();
      };
    });
  }
  return keyWaiter;
}

async function errorText(response) {
  try {
    const body = await response.json();
    return (body.error && body.error.message) || response.statusText;
  } catch (err) {
    return response.status + " " + response.statusText;
  }
}

async function api(path, options = {}) {
  for (;;) {
    const headers = { ...(options.headers || {}), ...authHeaders() };
    const response = await fetch(resolve(path), { ...options, headers });
    if (response.status === 401) {
      await askForKey(Boolean(apiKey()));
      continue;
    }
    if (!response.ok) throw new Error(await errorText(response));
    return response.json();
  }
}

// --- models ----------------------------------------------------------------------------------

function selectedModel() {
  return $("model").value || "whisper-1";
}

function healthOf(name) {
  const models = (ui.health && ui.health.models) || [];
  return models.find((m) => m.name === name) || {};
}

function renderModels() {
  const select = $("model");
  const ids = ui.models.map((m) => m.id);
  const current = Array.from(select.options).map((o) => o.value);
  if (ids.join("\n") !== current.join("\n")) {
    const keep = select.value;
    select.replaceChildren(...ui.models.map((m) => new Option(m.id, m.id)));
    const fallback = ui.models.find((m) => m.default) || ui.models[0];
    select.value = ids.includes(keep) ? keep : fallback ? fallback.id : "";
  }
  ui.models.forEach((m, i) => {
    select.options[i].textContent = `${m.id} (${m.state}${m.default ? ", default" : ""})`;
  });
  const model = ui.models.find((m) => m.id === select.value);
  const badge = $("model-state");
  badge.textContent = model ? model.state : "";
  badge.dataset.state = model ? model.state : "";
  $("unload").disabled = !model || model.state !== "loaded";
  $("language").placeholder = model && !model.multilingual ? "en only" : "auto-detect";

  const list = $("model-list");
  list.replaceChildren(
    ...ui.models.map((m) => {
      const h = healthOf(m.id);
      const li = document.createElement("li");
      li.dataset.model = m.id;
      li.dataset.state = m.state;
      const parts = [m.multilingual ? "multilingual" : "English only"];
      if (h.active_requests) parts.push(`${h.active_requests} in progress`);
      if (h.load_seconds != null && m.state === "loaded") parts.push(`loaded in ${h.load_seconds} s`);
      if (h.seconds_until_unload != null) parts.push(`unloads in ${Math.round(h.seconds_until_unload)} s`);
      if (h.error) parts.push(h.error);
      const dot = document.createElement("span");
      dot.className = "dot";
      const name = document.createElement("b");
      name.textContent = m.id;
      const info = document.createElement("span");
      info.className = "muted";
      info.textContent = ` ${m.state} · ${parts.join(" · ")}`;
      li.append(dot, name, info);
      return li;
    })
  );
}

function renderHealth() {
  const h = ui.health;
  if (!h) return;
  const info = [`v${h.version}`, h.backend, h.device, h.compute_type, `status ${h.status}`];
  $("server-info").textContent = info.filter(Boolean).join(" · ");
}

async function refresh() {
  try {
    const [models, health] = await Promise.all([
      api("./v1/models"),
      fetch(resolve("./health")).then((r) => (r.ok ? r.json() : null)),
    ]);
    ui.models = models.data;
    ui.health = health;
    renderModels();
    renderHealth();
  } catch (err) {
    $("server-info").textContent = "Cannot reach the server: " + err.message;
  }
}

async function poll() {
  await refresh();
  setTimeout(poll, POLL_MS);
}

async function unload() {
  const model = selectedModel();
  $("unload").disabled = true;
  try {
    await api("./v1/model/unload", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ model }),
    });
  } catch (err) {
    $("upload-error").textContent = "Unload failed: " + err.message;
  }
  await refresh();
}

// --- upload ----------------------------------------------------------------------------------

function uploadFile(file) {
  $("upload-error").textContent = "";
  const model = selectedModel();
  const form = new FormData();
  form.append("model", model); // before the file: the server queues the request before reading it
  form.append("response_format", "verbose_json");
  form.append("timestamp_granularities[]", "word");
  form.append("timestamp_granularities[]", "segment");
  const language = $("language").value.trim();
  if (language) form.append("language", language);
  form.append("file", file, file.name);

  const xhr = new XMLHttpRequest();
  xhr.open("POST", resolve("./v1/audio/transcriptions"));
  for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
  const progress = $("upload-progress");
  const label = $("upload-label");
  $("upload-status").hidden = false;
  $("spinner").hidden = true;
  progress.value = 0;
  label.textContent = `Uploading ${file.name}…`;
  setStatus("uploading");
  xhr.upload.onprogress = (event) => {
    if (event.lengthComputable) progress.value = event.loaded / event.total;
  };
  xhr.upload.onload = () => {
    progress.value = 1;
    label.textContent = `Transcribing with ${model}…`;
    $("spinner").hidden = false;
    setStatus("transcribing");
  };
  const started = performance.now();
  xhr.onload = async () => {
    $("spinner").hidden = true;
    if (xhr.status === 401) {
      await askForKey(Boolean(apiKey()));
      uploadFile(file);
      return;
    }
    let body = null;
    try {
      body = JSON.parse(xhr.responseText);
    } catch (err) {
      body = null;
    }
    if (xhr.status !== 200 || !body) {
      const message = body && body.error ? body.error.message : `${xhr.status} ${xhr.statusText}`;
      failed("upload-error", message);
      return;
    }
    label.textContent = `${file.name}: done`;
    const elapsed = (performance.now() - started) / 1000;
    showResult(body, {
      source: `file ${file.name}`,
      elapsed: `${elapsed.toFixed(2)} s (upload and decoding)`,
      model,
      audio: file,
      basename: file.name.replace(/\.[^.]*$/, "") || "transcript",
    });
    refresh();
  };
  xhr.onerror = () => failed("upload-error", "The upload failed: the server could not be reached.");
  xhr.send(form);
}

function failed(where, message) {
  $(where).textContent = message;
  $("spinner").hidden = true;
  setStatus("error");
}

// --- microphone ------------------------------------------------------------------------------

// Averages the input over each output sample's span: a cheap low-pass plus decimation, good
// enough for speech at 16 kHz. Keeps its fractional position between chunks.
class Resampler {
  constructor(inRate, outRate) {
    this.step = inRate / outRate;
    this.pos = 0;
    this.rest = new Float32Array(0);
  }

  push(input) {
    const data = new Float32Array(this.rest.length + input.length);
    data.set(this.rest);
    data.set(input, this.rest.length);
    const out = new Float32Array(Math.max(0, Math.ceil((data.length - this.pos) / this.step)));
    let n = 0;
    let pos = this.pos;
    while (pos + this.step <= data.length) {
      const a = Math.floor(pos);
      const b = Math.max(a + 1, Math.floor(pos + this.step));
      let sum = 0;
      for (let k = a; k < b; k++) sum += data[k];
      out[n++] = sum / (b - a);
      pos += this.step;
    }
    const keep = Math.floor(pos);
    this.rest = data.slice(keep);
    this.pos = pos - keep;
    return out.subarray(0, n);
  }
}

function toInt16(samples) {
  const out = new Int16Array(samples.length);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    out[i] = s < 0 ? s * 0x8000 : s * 0x7fff;
  }
  return out;
}

function wavBlob(chunks, rate) {
  const length = chunks.reduce((n, c) => n + c.length, 0);
  const buffer = new ArrayBuffer(44 + length * 2);
  const view = new DataView(buffer);
  const text = (offset, s) => [...s].forEach((c, i) => view.setUint8(offset + i, c.charCodeAt(0)));
  text(0, "RIFF");
  view.setUint32(4, 36 + length * 2, true);
  text(8, "WAVE");
  text(12, "fmt ");
  view.setUint32(16, 16, true);
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, 1, true); // mono
  view.setUint32(24, rate, true);
  view.setUint32(28, rate * 2, true);
  view.setUint16(32, 2, true);
  view.setUint16(34, 16, true);
  text(36, "data");
  view.setUint32(40, length * 2, true);
  let offset = 44;
  for (const chunk of chunks) {
    new Int16Array(buffer, offset, chunk.length).set(chunk);
    offset += chunk.length * 2;
  }
  return new Blob([buffer], { type: "audio/wav" });
}

function streamUrl(model) {
  const query = new URLSearchParams({ model, timestamp_granularities: "word" });
  const language = $("language").value.trim();
  if (language) query.set("language", language);
  if (apiKey()) query.set("token", apiKey()); // browsers cannot set headers on a WebSocket
  const url = resolve("./v1/audio/transcriptions/stream?" + query);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.href;
}

async function startRecording() {
  $("record-error").textContent = "";
  if (!window.isSecureContext || !navigator.mediaDevices || !window.AudioWorkletNode) {
    failed(
      "record-error",
      "The browser allows the microphone only on secure pages: open this page over HTTPS " +
        "(or on localhost). Uploading a file works anyway."
    );
    return;
  }
  const model = selectedModel();
  const button = $("record");
  button.disabled = true; // until the microphone is running: one recording at a time
  let media;
  let context;
  let tap;
  try {
    media = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
    context = new AudioContext();
    await context.audioWorklet.addModule(resolve("./docs/assets/recorder-worklet.js"));
    const source = context.createMediaStreamSource(media);
    tap = new AudioWorkletNode(context, "pcm-tap");
    source.connect(tap);
    tap.connect(context.destination); // the tap outputs silence; connected so that it is pulled
  } catch (err) {
    if (media) media.getTracks().forEach((t) => t.stop());
    if (context) context.close();
    button.disabled = false;
    failed("record-error", "Cannot record from the microphone: " + err.message);
    return;
  }
  button.disabled = false;

  const rec = {
    model,
    media,
    context,
    tap,
    resampler: new Resampler(context.sampleRate, RATE),
    chunks: [],
    samples: 0,
    pending: [],
    ws: new WebSocket(streamUrl(model)),
    partials: 0,
    stoppedAt: 0,
    done: false,
  };
  ui.recorder = rec;
  rec.ws.binaryType = "arraybuffer";
  rec.ws.onopen = () => {
    for (const chunk of rec.pending) rec.ws.send(chunk);
    rec.pending = [];
  };
  rec.ws.onmessage = (event) => onStreamMessage(rec, JSON.parse(event.data));
  rec.ws.onclose = (event) => {
    if (!rec.done) {
      finishRecorder(rec);
      failed("record-error", `The stream closed without a transcript (code ${event.code}).`);
    }
  };
  tap.port.onmessage = (event) => {
    const pcm = toInt16(rec.resampler.push(event.data));
    if (!pcm.length) return;
    rec.chunks.push(pcm);
    rec.samples += pcm.length;
    if (rec.ws.readyState === WebSocket.OPEN) rec.ws.send(pcm.buffer);
    else if (rec.ws.readyState === WebSocket.CONNECTING) rec.pending.push(pcm.buffer);
    let sum = 0;
    for (const s of event.data) sum += s * s;
    $("level").value = Math.min(1, Math.sqrt(sum / event.data.length) * 4);
    $("record-time").textContent = (rec.samples / RATE).toFixed(1) + " s";
  };
  const partial = $("partial");
  partial.textContent = "";
  partial.dataset.count = "0";
  $("record").textContent = "■ Stop";
  $("record").classList.add("recording");
  setStatus("recording");
}

function finishRecorder(rec) {
  rec.done = true;
  rec.media.getTracks().forEach((t) => t.stop());
  rec.context.close();
  $("level").value = 0;
  $("record").textContent = "● Record";
  $("record").classList.remove("recording");
  $("record").disabled = false;
  if (ui.recorder === rec) ui.recorder = null;
}

function stopRecording() {
  const rec = ui.recorder;
  if (!rec || rec.stoppedAt) return;
  rec.stoppedAt = performance.now();
  rec.media.getTracks().forEach((t) => t.stop());
  rec.tap.port.onmessage = null;
  $("record").disabled = true;
  $("record").textContent = "Transcribing…";
  setStatus("transcribing");
  const send = () => rec.ws.send(EOS);
  if (rec.ws.readyState === WebSocket.OPEN) send();
  else rec.ws.addEventListener("open", send);
}

function onStreamMessage(rec, message) {
  if (message.type === "partial") {
    const partial = $("partial");
    rec.partials += 1;
    partial.textContent = message.text;
    partial.dataset.count = String(rec.partials);
  } else if (message.type === "final") {
    const elapsed = (performance.now() - rec.stoppedAt) / 1000;
    finishRecorder(rec);
    const words = message.segments.flatMap((s) => s.words || []);
    const result = { task: "transcribe", ...message, words };
    delete result.type;
    delete result.is_final;
    showResult(result, {
      source: `microphone (${rec.partials} partial${rec.partials === 1 ? "" : "s"} while speaking)`,
      elapsed: `${elapsed.toFixed(2)} s after you stopped`,
      model: rec.model,
      audio: wavBlob(rec.chunks, RATE),
      basename: "recording",
    });
    refresh();
  } else if (message.type === "error") {
    finishRecorder(rec);
    failed("record-error", message.message);
  }
}

// --- results ---------------------------------------------------------------------------------

function languageName(language) {
  if (!language) return "unknown";
  if (language.length <= 3) {
    try {
      const name = new Intl.DisplayNames(["en"], { type: "language" }).of(language);
      return `${name} (${language})`;
    } catch (err) {
      return language;
    }
  }
  return language.charAt(0).toUpperCase() + language.slice(1);
}

function clock(seconds) {
  const m = Math.floor(seconds / 60);
  const s = (seconds - m * 60).toFixed(2).padStart(5, "0");
  return `${m}:${s}`;
}

function stamp(seconds, comma) {
  const ms = Math.round(seconds * 1000);
  const pad = (n, w) => String(n).padStart(w, "0");
  const h = Math.floor(ms / 3600000);
  const m = Math.floor(ms / 60000) % 60;
  const s = Math.floor(ms / 1000) % 60;
  return `${pad(h, 2)}:${pad(m, 2)}:${pad(s, 2)}${comma ? "," : "."}${pad(ms % 1000, 3)}`;
}

function toSrt(result) {
  return (result.segments || [])
    .map((s, i) => `${i + 1}\n${stamp(s.start, true)} --> ${stamp(s.end, true)}\n${s.text.trim()}\n`)
    .join("\n");
}

function toVtt(result) {
  const cues = (result.segments || [])
    .map((s) => `${stamp(s.start, false)} --> ${stamp(s.end, false)}\n${s.text.trim()}\n`)
    .join("\n");
  return "WEBVTT\n\n" + cues;
}

function setDownload(id, name, text, type) {
  const link = $(id);
  if (link.href && link.href.startsWith("blob:")) URL.revokeObjectURL(link.href);
  link.href = URL.createObjectURL(new Blob([text], { type }));
  link.download = name;
}

function play(start, end) {
  const player = $("player");
  player.currentTime = start;
  ui.stopAt = end;
  player.play().catch(() => {});
}

function showResult(result, meta) {
  ui.result = result;
  if (ui.audioUrl) URL.revokeObjectURL(ui.audioUrl);
  ui.audioUrl = URL.createObjectURL(meta.audio);
  $("player").src = ui.audioUrl;
  $("result").hidden = false;
  $("text").textContent = result.text.trim();
  $("result-language").textContent = languageName(result.language);
  $("result-duration").textContent = `${Number(result.duration).toFixed(2)} s`;
  $("result-elapsed").textContent = meta.elapsed;
  $("result-model").textContent = meta.model;
  $("result-source").textContent = meta.source;

  const body = $("segments").tBodies[0];
  body.replaceChildren(
    ...(result.segments || []).map((s, i) => {
      const row = document.createElement("tr");
      row.dataset.start = s.start;
      row.dataset.end = s.end;
      row.tabIndex = 0;
      for (const value of [i + 1, clock(s.start), clock(s.end), s.text.trim()]) {
        row.insertCell().textContent = value;
      }
      row.onclick = () => play(s.start, s.end);
      row.onkeydown = (e) => e.key === "Enter" && play(s.start, s.end);
      return row;
    })
  );

  const words = $("words");
  words.replaceChildren(
    ...(result.words || []).map((w) => {
      const span = document.createElement("span");
      span.className = "word";
      span.dataset.start = w.start;
      span.dataset.end = w.end;
      span.title = `${clock(w.start)} – ${clock(w.end)}`;
      const time = document.createElement("small");
      time.textContent = w.start.toFixed(2);
      span.append(w.word.trim(), time);
      span.onclick = () => play(w.start, w.end);
      return span;
    })
  );
  if (!(result.words || []).length) words.textContent = "(no word timestamps)";

  const base = meta.basename;
  setDownload("dl-txt", base + ".txt", result.text.trim() + "\n", "text/plain");
  setDownload("dl-srt", base + ".srt", toSrt(result), "application/x-subrip");
  setDownload("dl-vtt", base + ".vtt", toVtt(result), "text/vtt");
  setDownload("dl-json", base + ".json", JSON.stringify(result, null, 2), "application/json");
  setStatus("done");
  $("result").scrollIntoView({ behavior: "smooth", block: "nearest" });
}

function highlight() {
  const player = $("player");
  const t = player.currentTime;
  if (ui.stopAt != null && t >= ui.stopAt) {
    player.pause();
    ui.stopAt = null;
  }
  for (const row of $("segments").tBodies[0].rows) {
    row.classList.toggle("playing", !player.paused && t >= row.dataset.start && t < row.dataset.end);
  }
}

// --- wiring ----------------------------------------------------------------------------------

function init() {
  setStatus("idle");
  $("model").onchange = renderModels;
  $("unload").onclick = unload;
  $("record").onclick = () => (ui.recorder ? stopRecording() : startRecording());
  $("file").onchange = (event) => {
    const file = event.target.files[0];
    if (file) uploadFile(file);
    event.target.value = "";
  };
  const drop = $("drop");
  drop.ondragover = (event) => {
    event.preventDefault();
    drop.classList.add("over");
  };
  drop.ondragleave = () => drop.classList.remove("over");
  drop.ondrop = (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    const file = event.dataTransfer.files[0];
    if (file) uploadFile(file);
  };
  $("player").ontimeupdate = highlight;
  $("player").onpause = highlight;
  poll();
}

init();
