// The chat's microphone: records while "Dictate" is pressed, then sends the recording to the
// installation's own transcription model and puts the text in the message box for editing.
// The recording is WAV made here from the microphone's samples (16 kHz mono, 16-bit), a
// format the server decodes without C libraries; nothing leaves the installation.
import { errorText } from "./http.js";

export function enhanceDictation() {
  const button = document.getElementById("dictate");
  const prompt = document.getElementById("prompt");
  const status = document.getElementById("dictation-status");
  const root = document.getElementById("chat");
  if (!button || !prompt || !root) return;
  let recording = null;

  function say(text, isError) {
    status.textContent = text;
    status.classList.toggle("error-note", !!isError);
  }

  async function start() {
    if (!navigator.mediaDevices?.getUserMedia) {
      say("This browser cannot record here (a microphone needs HTTPS or localhost).", true);
      return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1 } });
    } catch (e) {
      say(`The microphone is not available: ${e.message || e.name}`, true);
      return;
    }
    const context = new AudioContext({ sampleRate: 16000 });
    const source = context.createMediaStreamSource(stream);
    // A ScriptProcessor hands over raw samples with no module file to load.
    const tap = context.createScriptProcessor(4096, 1, 1);
    const chunks = [];
    tap.onaudioprocess = (e) => chunks.push(new Float32Array(e.inputBuffer.getChannelData(0)));
    source.connect(tap);
    tap.connect(context.destination);
    recording = { stream, context, source, tap, chunks };
    button.setAttribute("aria-pressed", "true");
    button.textContent = "Stop dictation";
    say("Listening… press Stop dictation when you are done.");
  }

  async function finish() {
    const { stream, context, source, tap, chunks } = recording;
    recording = null;
    source.disconnect();
    tap.disconnect();
    stream.getTracks().forEach((t) => t.stop());
    const rate = context.sampleRate;
    await context.close();
    button.setAttribute("aria-pressed", "false");
    button.textContent = "Dictate";
    const samples = chunks.reduce((n, c) => n + c.length, 0);
    if (samples < rate / 4) {
      say("Nothing was recorded.", true);
      return;
    }
    button.disabled = true;
    say("Transcribing…");
    const form = new FormData();
    form.append("model", button.dataset.model);
    form.append("file", wav(chunks, samples, rate), "dictation.wav");
    try {
      const res = await fetch("/v1/audio/transcriptions", {
        method: "POST",
        headers: { "X-CSRF-Token": root.dataset.csrf },
        body: form,
      });
      if (!res.ok) throw new Error(await errorText(res));
      const { text } = await res.json();
      insert(text.trim());
      say(text.trim() ? "" : "No speech was heard.", !text.trim());
    } catch (e) {
      say(`Transcription failed: ${e.message}`, true);
    } finally {
      button.disabled = false;
    }
  }

  // At the cursor, with a space between it and what is there.
  function insert(text) {
    if (!text) return;
    const { selectionStart: a, selectionEnd: b, value } = prompt;
    const before = value.slice(0, a), after = value.slice(b);
    const spaced = (before && !/\s$/.test(before) ? " " : "") + text + (after && !/^\s/.test(after) ? " " : "");
    prompt.value = before + spaced + after;
    prompt.focus();
    prompt.selectionStart = prompt.selectionEnd = before.length + spaced.length;
  }

  button.addEventListener("click", () => (recording ? finish() : start()));
}

/// A WAV file of 16-bit mono PCM.
function wav(chunks, samples, rate) {
  const view = new DataView(new ArrayBuffer(44 + samples * 2));
  const text = (at, s) => [...s].forEach((c, i) => view.setUint8(at + i, c.charCodeAt(0)));
  text(0, "RIFF");
  view.setUint32(4, 36 + samples * 2, true);
  text(8, "WAVEfmt ");
  view.setUint32(16, 16, true);
  view.setUint16(20, 1, true);
  view.setUint16(22, 1, true);
  view.setUint32(24, rate, true);
  view.setUint32(28, rate * 2, true);
  view.setUint16(32, 2, true);
  view.setUint16(34, 16, true);
  text(36, "data");
  view.setUint32(40, samples * 2, true);
  let at = 44;
  for (const chunk of chunks) {
    for (const s of chunk) {
      view.setInt16(at, Math.max(-1, Math.min(1, s)) * 0x7fff, true);
      at += 2;
    }
  }
  return new Blob([view], { type: "audio/wav" });
}
