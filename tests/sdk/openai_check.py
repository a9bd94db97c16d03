"""Drive a running ferrostack with the unmodified OpenAI Python SDK.

Usage: python3 openai_check.py BASE_URL API_KEY MODEL [OTHER_MODEL]

Exercises models.list and models.retrieve (MODEL, and OTHER_MODEL when given: an id with a `/`),
chat.completions.create (plain and streamed), list (with paging and a model filter),
retrieve, update (metadata), messages.list and delete; then client.conversations (create,
retrieve, update, delete, items.create, items.list, items.retrieve, items.delete); then
client.responses (create plain and streamed, chained with previous_response_id and in a
conversation, retrieve, input_items.list, delete); and checks what comes back. The server must
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
    responses(client, model)
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


def responses(client, model):
    """client.responses: create (plain, streamed, chained, in a conversation), retrieve,
    input_items.list, delete."""
    plain = client.responses.create(model=model, input="say hello", instructions="be brief", metadata={"suite": "sdk"})
    check(plain.id.startswith("resp_") and plain.status == "completed", f"responses.create answers: {plain}")
    check(plain.model == model, f"the model as sent, got {plain.model!r}")
    check(plain.output_text, "responses.create returns text")

    events = list(client.responses.create(model=model, input="again", previous_response_id=plain.id, stream=True))
    types = [e.type for e in events]
    check(types[:2] == ["response.created", "response.in_progress"] and types[-1] == "response.completed",
          f"the stream opens and completes: {types}")
    check([e.sequence_number for e in events] == list(range(len(events))), "sequence numbers count up from 0")
    streamed = events[-1].response
    check(streamed.id == events[0].response.id, "the first event carries the id")
    check(streamed.previous_response_id == plain.id, "the streamed turn continues the first")
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    check(text and text == streamed.output_text, f"the deltas make the text: {text!r}")

    got = client.responses.retrieve(streamed.id)
    check(got.id == streamed.id and got.output_text == text and got.model == model, f"retrieve: {got}")
    items = client.responses.input_items.list(streamed.id)
    check(len(items.data) == 1 and items.data[0].content[0].text == "again", f"input_items.list: {items}")

    conv = client.conversations.create()
    in_conv = client.responses.create(model=model, input="in a conversation", conversation=conv.id)
    listed = [i.id for i in client.conversations.items.list(conv.id, order="asc")]
    check(len(listed) == 2 and listed[1] == in_conv.output[0].id, f"the turn is in the conversation: {listed}")

    client.responses.delete(plain.id)
    try:
        client.responses.retrieve(plain.id)
        check(False, "a deleted response is gone")
    except openai.NotFoundError as e:
        check(f"Response '{plain.id}' not found" in str(e), f"the 404 names the response: {e}")
    try:
        client.responses.create(model="no-such-model", input="x")
        check(False, "an unknown model is refused")
    except openai.NotFoundError as e:
        check("Model 'no-such-model' not found" in str(e), f"the 404 names the model: {e}")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"openai SDK check FAILED: {e}", file=sys.stderr)
        sys.exit(1)
