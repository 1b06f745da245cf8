"""Ayush's /v1 API as real clients use it: the official `openai` Python SDK, pointed at Ayush
by its base URL and an API key. Prints what it saw as one JSON object for the Rust test to
check. Environment: AYUSH_BASE_URL, AYUSH_KEY, AYUSH_REVOKED_KEY, AYUSH_MODEL (a chat model),
AYUSH_EMBED_MODEL (an embedding model)."""

import json
import os

import openai
from openai import OpenAI

base = os.environ["AYUSH_BASE_URL"]
model = os.environ["AYUSH_MODEL"]
client = OpenAI(base_url=base, api_key=os.environ["AYUSH_KEY"], max_retries=0)
question = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Say hello."}]
out = {"sdk": openai.__version__}

out["models"] = [m.id for m in client.models.list()]

r = client.chat.completions.create(model=model, messages=question, max_tokens=8, temperature=0, seed=7, user="tester")
out["plain"] = {
    "object": r.object,
    "content": r.choices[0].message.content,
    "role": r.choices[0].message.role,
    "finish": r.choices[0].finish_reason,
    "usage": r.usage.model_dump() if r.usage else None,
}

pieces, usage, finish = [], None, None
stream = client.chat.completions.create(
    model=model,
    messages=question,
    max_completion_tokens=8,
    temperature=0,
    stream=True,
    stream_options={"include_usage": True},
)
for chunk in stream:
    if chunk.usage:
        usage = chunk.usage.model_dump()
    for choice in chunk.choices:
        if choice.delta.content:
            pieces.append(choice.delta.content)
        if choice.finish_reason:
            finish = choice.finish_reason
out["stream"] = {"content": "".join(pieces), "pieces": len(pieces), "usage": usage, "finish": finish}

try:
    client.chat.completions.create(model="no-such-model", messages=question)
    out["not_found"] = None
except openai.NotFoundError as e:
    out["not_found"] = {"status": e.status_code, "code": e.code, "param": e.param, "message": e.message}

try:
    client.chat.completions.create(model=model, messages=question, n=2)
    out["bad_request"] = None
except openai.BadRequestError as e:
    out["bad_request"] = {"status": e.status_code, "param": e.param, "type": e.type}

try:
    OpenAI(base_url=base, api_key=os.environ["AYUSH_REVOKED_KEY"], max_retries=0).models.list()
    out["revoked"] = None
except openai.AuthenticationError as e:
    out["revoked"] = {"status": e.status_code, "code": e.code}

embed_model = os.environ["AYUSH_EMBED_MODEL"]
# The SDK asks for base64 unless told otherwise, and decodes it.
r = client.embeddings.create(model=embed_model, input=["The weather is lovely today.", "It's so sunny outside!"])
a, b = r.data[0].embedding, r.data[1].embedding
out["embeddings"] = {
    "object": r.object,
    "count": len(r.data),
    "dims": len(a),
    "indexes": [d.index for d in r.data],
    "cosine": sum(x * y for x, y in zip(a, b)),
    "usage": r.usage.model_dump(),
}
f = client.embeddings.create(model=embed_model, input="The weather is lovely today.", encoding_format="float")
out["embeddings"]["float_matches_base64"] = max(abs(x - y) for x, y in zip(f.data[0].embedding, a)) < 1e-6
try:
    client.embeddings.create(model=model, input="a chat model makes no vectors")
    out["embed_chat_model"] = None
except openai.BadRequestError as e:
    out["embed_chat_model"] = {"status": e.status_code, "param": e.param}

print(json.dumps(out))
