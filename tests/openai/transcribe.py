"""Ayush's /v1/audio/transcriptions as the official `openai` Python SDK calls it. Prints what it
saw as one JSON object for the Rust test to check. Environment: AYUSH_BASE_URL, AYUSH_KEY,
AYUSH_MODEL (a transcription model), AYUSH_AUDIO (a WAV file of speech), AYUSH_NOT_AUDIO (a
file that is not audio), AYUSH_CHAT_MODEL (a chat model)."""

import json
import os

import openai
from openai import OpenAI

client = OpenAI(base_url=os.environ["AYUSH_BASE_URL"], api_key=os.environ["AYUSH_KEY"], max_retries=0)
model, audio = os.environ["AYUSH_MODEL"], os.environ["AYUSH_AUDIO"]
out = {}


def error(e):
    return {"status": e.status_code, "code": e.code, "param": e.param, "message": e.message}


with open(audio, "rb") as f:
    r = client.audio.transcriptions.create(model=model, file=f)
out["json"] = {"text": r.text}

with open(audio, "rb") as f:
    out["text"] = client.audio.transcriptions.create(model=model, file=f, response_format="text", language="en")

with open(audio, "rb") as f:
    out["srt"] = client.audio.transcriptions.create(model=model, file=f, response_format="srt")

with open(audio, "rb") as f:
    out["vtt"] = client.audio.transcriptions.create(model=model, file=f, response_format="vtt", temperature=0.0)

with open(audio, "rb") as f:
    v = client.audio.transcriptions.create(
        model=model,
        file=f,
        response_format="verbose_json",
        timestamp_granularities=["segment"],
        prompt="Harvard sentences.",
    )
out["verbose"] = {
    "language": v.language,
    "duration": v.duration,
    "text": v.text,
    "segments": [{"start": s.start, "end": s.end, "text": s.text} for s in v.segments or []],
}

with open(os.environ["AYUSH_NOT_AUDIO"], "rb") as f:
    try:
        client.audio.transcriptions.create(model=model, file=f)
        out["not_audio"] = None
    except openai.BadRequestError as e:
        out["not_audio"] = error(e)

with open(audio, "rb") as f:
    try:
        client.audio.transcriptions.create(model=os.environ["AYUSH_CHAT_MODEL"], file=f)
        out["chat_model"] = None
    except openai.BadRequestError as e:
        out["chat_model"] = error(e)

with open(audio, "rb") as f:
    try:
        client.audio.transcriptions.create(model="no-such-model", file=f)
        out["no_model"] = None
    except openai.NotFoundError as e:
        out["no_model"] = error(e)

with open(audio, "rb") as f:
    try:
        client.audio.transcriptions.create(model=model, file=f, language="xx")
        out["bad_language"] = None
    except openai.BadRequestError as e:
        out["bad_language"] = error(e)

print(json.dumps(out))
