"""Drive a running ferrostack with the unmodified OpenAI Python SDK.

Usage: python3 openai_check.py BASE_URL API_KEY MODEL [OTHER_MODEL]

Exercises models.list and models.retrieve (MODEL, and OTHER_MODEL when given: an id with a `/`),
chat.completions.create (plain and streamed), list (with paging and a model filter),
retrieve, update (metadata), messages.list and delete; then client.conversations (create,
retrieve, update, delete, items.create, items.list, items.retrieve, items.delete); and checks what
comes back. The server must
store completions with `durability: sync`, so a completion is listed as soon as create returns.
Exits 0 when everything holds, 1 with the failed check otherwise.
"""

import sys

import openai


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def main():
    base, key, model = sys.argv[1], sys.argv[2], sys.argv[3]
    client = openai.OpenAI(base_url=base.rstrip("/") + "/v1", api_key=key, max_retries=0, timeout=30)
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "say hello"}]

    listed_models = [m.id for m in client.models.list()]
    check(model in listed_models, f"models.list lists {model!r}: {listed_models}")
    for wanted in [model] + sys.argv[4:5]:
        got_model = client.models.retrieve(wanted)
        check(got_model.id == wanted and got_model.object == "model", f"models.retrieve({wanted!r}) gives it: {got_model}")
    try:
        client.models.retrieve("no-such-model")
        check(False, "an unknown model cannot be retrieved")
    except openai.NotFoundError:
        pass

    plain = client.chat.completions.create(model=model, messages=messages, metadata={"suite": "sdk"})
    check(plain.id, "create returns an id")
    check(plain.model == model, f"model is the requested id, got {plain.model!r}")
    check(plain.choices[0].message.content, "create returns content")

    stream = client.chat.completions.create(model=model, messages=messages, stream=True)
    chunks = list(stream)
    check(chunks, "the stream yields chunks")
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    check(text, "the stream carries text")
    streamed_id = chunks[0].id

    page = client.chat.completions.list(limit=1, order="desc")
    check(len(page.data) == 1, f"limit=1 gives one completion, got {len(page.data)}")
    listed = [c.id for c in client.chat.completions.list(limit=1, model=model)]  # auto-paginates
    check(plain.id in listed and streamed_id in listed, f"both completions are listed: {listed}")

    got = client.chat.completions.retrieve(plain.id)
    check(got.id == plain.id and got.choices[0].message.content == plain.choices[0].message.content,
          "retrieve returns the stored completion")
    streamed = client.chat.completions.retrieve(streamed_id)
    check(streamed.choices[0].message.content == text, "the stored streamed completion has the relayed text")

    updated = client.chat.completions.update(plain.id, metadata={"reviewed": "yes"})
    check(updated.metadata == {"reviewed": "yes"}, f"update replaces metadata, got {updated.metadata!r}")

    stored = list(client.chat.completions.messages.list(plain.id))
    roles = [m.role for m in stored]
    check(roles == ["system", "user", "assistant"], f"messages.list gives input then answer messages: {roles}")
    check(stored[0].id == f"{plain.id}-0", f"message ids are numbered, got {stored[0].id!r}")

    deleted = client.chat.completions.delete(plain.id)
    check(deleted.deleted and deleted.id == plain.id, "delete confirms")
    try:
        client.chat.completions.retrieve(plain.id)
        check(False, "a deleted completion is gone")
    except openai.NotFoundError:
        pass

    try:
        client.chat.completions.create(model="no-such-model", messages=messages)
        check(False, "an unknown model is refused")
    except openai.NotFoundError as e:
        check("no-such-model" in str(e), f"the 404 names the model: {e}")

    conversations(client)
    print("openai SDK check: all checks passed")


def conversations(client):
    """client.conversations: create, retrieve, update, delete, items.create/list/retrieve/delete."""
    conv = client.conversations.create(
        items=[{"type": "message", "role": "user", "content": "first"}], metadata={"suite": "sdk"})
    check(conv.id.startswith("conv_") and len(conv.id) == 53, f"a conv_ id, got {conv.id!r}")
    check(conv.object == "conversation" and conv.metadata == {"suite": "sdk"}, f"create answers the conversation: {conv}")
    got = client.conversations.retrieve(conv.id)
    check(got.id == conv.id and got.created_at == conv.created_at, "retrieve returns the conversation")
    updated = client.conversations.update(conv.id, metadata={"reviewed": "yes"})
    check(updated.metadata == {"reviewed": "yes"}, f"update replaces metadata, got {updated.metadata!r}")

    added = client.conversations.items.create(conv.id, items=[
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": f"m{i}"}]} for i in range(4)
    ] + [{"type": "function_call", "call_id": "call_1", "name": "lookup", "arguments": "{}"}])
    check(len(added.data) == 5 and not added.has_more, f"items.create answers the 5 items: {added}")
    check(added.data[0].id.startswith("msg_") and added.data[4].id.startswith("fc_"), "ids by item type")

    page = client.conversations.items.list(conv.id, limit=2, order="asc")
    check(len(page.data) == 2 and page.has_more, "limit=2 gives 2 items and more")
    listed = [i.id for i in client.conversations.items.list(conv.id, limit=2, order="asc")]  # auto-paginates
    check(len(listed) == 6 and listed[1:] == [i.id for i in added.data], f"all 6 items in order: {listed}")
    newest = client.conversations.items.list(conv.id, limit=1)
    check(newest.data[0].id == added.data[4].id, "default order is newest first")

    item = client.conversations.items.retrieve(added.data[1].id, conversation_id=conv.id)
    check(item.id == added.data[1].id and item.content[0].text == "m1", f"items.retrieve: {item}")
    client.conversations.items.delete(added.data[1].id, conversation_id=conv.id)
    try:
        client.conversations.items.retrieve(added.data[1].id, conversation_id=conv.id)
        check(False, "a deleted item is gone")
    except openai.NotFoundError:
        pass

    deleted = client.conversations.delete(conv.id)
    check(deleted.deleted and deleted.id == conv.id, "delete confirms")
    try:
        client.conversations.retrieve(conv.id)
        check(False, "a deleted conversation is gone")
    except openai.NotFoundError:
        pass
    try:
        client.conversations.retrieve("conv_nothex")
        check(False, "a malformed id is refused")
    except openai.BadRequestError as e:
        check("conversation_id" in str(e), f"the 400 names conversation_id: {e}")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"openai SDK check FAILED: {e}", file=sys.stderr)
        sys.exit(1)
