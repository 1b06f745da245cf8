"""Ayush's /v1/audio/speech and /v1/images/generations as the official `openai` Python SDK calls
them. Writes the audio and the first image beside OUT and prints what it saw as one JSON object
for the Rust test to check. Environment: AYUSH_BASE_URL, AYUSH_KEY, AYUSH_SPEECH_MODEL,
AYUSH_IMAGE_MODEL, AYUSH_OUT (a path prefix)."""

import base64
import json
import os

import openai
from openai import OpenAI

client = OpenAI(base_url=os.environ["AYUSH_BASE_URL"], api_key=os.environ["AYUSH_KEY"], max_retries=0)
prefix = os.environ["AYUSH_OUT"]
out = {}

speech = client.audio.speech.create(
    model=os.environ["AYUSH_SPEECH_MODEL"], voice="alloy", input="Glue the sheet to the dark blue background."
)
speech.write_to_file(prefix + ".mp3")
out["speech_bytes"] = os.path.getsize(prefix + ".mp3")

images = client.images.generate(model=os.environ["AYUSH_IMAGE_MODEL"], prompt="a red fox", n=2, size="256x256")
out["images"] = len(images.data)
out["revised_prompt"] = images.data[0].revised_prompt
with open(prefix + ".png", "wb") as f:
    f.write(base64.b64decode(images.data[0].b64_json))

try:
    client.audio.speech.create(model=os.environ["AYUSH_IMAGE_MODEL"], voice="alloy", input="hi")
except openai.BadRequestError as e:
    out["wrong_model"] = {"status": e.status_code, "message": e.message}

print(json.dumps(out))
