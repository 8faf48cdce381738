"""The local Bot API server answers like the real one (``/work/shared/TELEGRAM.md``).

Raw HTTP checks of the envelope, status codes, descriptions, parameters and
headers; the HTML parse-mode rules as a table; long polling; flood limits; and
python-telegram-bot talking to it (its exceptions, and an ``Application``
polling updates and replying).
"""

from __future__ import annotations

import json
import struct
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib

import pytest
import telegram
from telegram.ext import ApplicationBuilder, CallbackQueryHandler, CommandHandler

from tests.botapi import BotAPIServer, ParseError, botapi_server, parse_html  # noqa: F401 - fixture

pytestmark = pytest.mark.filterwarnings("ignore:.*retry_after.*:telegram.warnings.PTBDeprecationWarning")


def call(server: BotAPIServer, method: str, token: str | None = None, json_body: bool = False,
         **params) -> tuple[int, dict, dict]:
    """POST a method the way PTB does (form-urlencoded, non-strings JSON-encoded); (status, body, headers)."""
    url = f"{server.base_url}{token or server.token}/{method}"
    if json_body:
        data, ctype = json.dumps(params).encode(), "application/json"
    else:
        form = {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
        data, ctype = urllib.parse.urlencode(form).encode(), "application/x-www-form-urlencoded"
    req = urllib.request.Request(url, data=data, headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            return resp.status, json.loads(resp.read()), dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read()), dict(err.headers)


# -- envelope and errors --------------------------------------------------------------


def test_success_envelope_and_message(botapi_server):
    status, body, _ = call(botapi_server, "sendMessage", chat_id=42, text="<b>hi</b> there", parse_mode="HTML")
    assert status == 200 and body["ok"] is True
    msg = body["result"]
    assert msg["chat"] == {"id": 42, "type": "private", "first_name": "A"}
    assert msg["text"] == "hi there" and msg["entities"] == [{"type": "bold", "offset": 0, "length": 2}]
    assert msg["from"]["is_bot"] is True
    assert botapi_server.sent(42)[0]["text"] == "<b>hi</b> there"


@pytest.mark.parametrize("setup, chat, text, status, description, parameters", [
    (lambda s: s.block(7), 7, "x", 403, "Forbidden: bot was blocked by the user", None),
    (lambda s: s.deactivate(7), 7, "x", 403, "Forbidden: user is deactivated", None),
    (lambda s: s.forget(7), 7, "x", 400, "Bad Request: chat not found", None),
    (lambda s: None, 7, "x" * 4097, 400, "Bad Request: message is too long", None),
    (lambda s: None, 7, "", 400, "Bad Request: message text is empty", None),
    (lambda s: None, 7, "<p>para</p>", 400,
     "Bad Request: can't parse entities: Unsupported start tag \"p\" at byte offset 0", None),
    (lambda s: s.migrate(-77, -10077), -77, "x", 400, "Bad Request: group chat was upgraded to a supergroup chat",
     {"migrate_to_chat_id": -10077}),
])
def test_error_cases_from_the_table(botapi_server, setup, chat, text, status, description, parameters):
    setup(botapi_server)
    code, body, _ = call(botapi_server, "sendMessage", chat_id=chat, text=text, parse_mode="HTML")
    assert code == status
    assert body == {"ok": False, "error_code": status, "description": description,
                    **({"parameters": parameters} if parameters else {})}
    assert botapi_server.sent() == []


def test_wrong_token_is_401_and_unknown_method_404(botapi_server):
    code, body, _ = call(botapi_server, "getMe", token="1:nope")
    assert (code, body) == (401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
    code, body, _ = call(botapi_server, "sendTelepathy", chat_id=1)
    assert code == 404 and body["ok"] is False


def test_json_bodies_are_accepted(botapi_server):
    markup = {"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]}
    code, body, _ = call(botapi_server, "sendMessage", json_body=True, chat_id=5, text="json", reply_markup=markup)
    assert code == 200 and body["result"]["reply_markup"] == markup


def test_strict_chats_know_only_chats_that_were_added():
    with BotAPIServer(strict_chats=True) as server:
        assert call(server, "sendMessage", chat_id=5, text="x")[0] == 400
        server.add_chat(5)
        assert call(server, "sendMessage", chat_id=5, text="x")[0] == 200


def test_fail_next_injects_errors_for_matching_requests(botapi_server):
    botapi_server.fail_next(2, 502, chat_id=9)
    assert call(botapi_server, "sendMessage", chat_id=8, text="x")[0] == 200
    assert call(botapi_server, "sendMessage", chat_id=9, text="x")[0] == 502
    assert call(botapi_server, "sendMessage", chat_id=9, text="x")[0] == 502
    assert call(botapi_server, "sendMessage", chat_id=9, text="x")[0] == 200
    with pytest.raises(ValueError):
        botapi_server.fail_next(1, 429)  # a 429 needs retry_after


# -- HTML parse mode -------------------------------------------------------------------------


@pytest.mark.parametrize("html, plain, entities", [
    ("plain", "plain", []),
    ("a &lt;b&gt; &amp; &quot;c&quot;", 'a <b> & "c"', []),
    ("Tom & Jerry &copy; &#65;&#x42;", "Tom & Jerry &copy; AB", []),  # bare & and unknown entity kept
    ("<b>b</b><strong>s</strong><i>i</i><em>e</em><u>u</u><ins>n</ins><s>s</s><strike>k</strike><del>d</del>",
     "bsieunskd", [{"type": t, "offset": i, "length": 1} for i, t in enumerate(
         ["bold", "bold", "italic", "italic", "underline", "underline", "strikethrough", "strikethrough",
          "strikethrough"])]),
    ('<a href="https://x.kz/?a=1&amp;b=2">link</a>', "link",
     [{"type": "text_link", "offset": 0, "length": 4, "url": "https://x.kz/?a=1&b=2"}]),
    ('<span class="tg-spoiler">s</span><tg-spoiler>t</tg-spoiler>', "st",
     [{"type": "spoiler", "offset": 0, "length": 1}, {"type": "spoiler", "offset": 1, "length": 1}]),
    ('<pre><code class="language-python">x = 1</code></pre>', "x = 1",
     [{"type": "pre", "offset": 0, "length": 5, "language": "python"}]),
    ("<blockquote expandable>q</blockquote>", "q", [{"type": "expandable_blockquote", "offset": 0, "length": 1}]),
    ("😀<b>x</b>", "😀x", [{"type": "bold", "offset": 2, "length": 1}]),  # UTF-16 offsets
    ("<B>upper</B>", "upper", [{"type": "bold", "offset": 0, "length": 5}]),
])
def test_html_accepted(html, plain, entities):
    assert parse_html(html) == (plain, entities)


@pytest.mark.parametrize("html, error", [
    ("a < b", 'Unsupported start tag "" at byte offset 2'),
    ("1<2", "Unclosed start tag at byte offset 1"),
    ("<p>x</p>", 'Unsupported start tag "p" at byte offset 0'),
    ("Привет <div>", 'Unsupported start tag "div" at byte offset 13'),  # UTF-8 byte offsets
    ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
    ("<b>x", 'Can\'t find end tag corresponding to start tag "b"'),
    ("x</b>", "Unexpected end tag at byte offset 1"),
    ("<span>x</span>", 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
    ("<a href=x\"y>t</a>", "Unexpected end of name token at byte offset 8"),
    ("<a href>t</a>", 'Expected equal sign in declaration of an attribute of the tag "a" at byte offset 0'),
])
def test_html_refused_with_the_real_suffix(html, error):
    with pytest.raises(ParseError) as info:
        parse_html(html)
    assert str(info.value) == error


def test_length_limit_counts_text_after_entity_parsing(botapi_server):
    body = "&amp;" * 4096  # 20480 bytes of source, 4096 characters after parsing
    assert call(botapi_server, "sendMessage", chat_id=1, text=body, parse_mode="HTML")[0] == 200
    assert call(botapi_server, "sendMessage", chat_id=2, text="<b>" + "x" * 4097 + "</b>",
                parse_mode="HTML")[1]["description"] == "Bad Request: message is too long"
    assert call(botapi_server, "sendMessage", chat_id=3, text="<b> </b>",
                parse_mode="HTML")[1]["description"] == "Bad Request: message text is empty"


# -- flood limits ----------------------------------------------------------------------------


def test_global_flood_limit_answers_429_with_retry_after():
    with BotAPIServer(global_rate=5, chat_rate=None) as server:
        codes = [call(server, "sendMessage", chat_id=100 + i, text="x") for i in range(7)]
        assert [c[0] for c in codes[:5]] == [200] * 5
        status, body, headers = codes[5]
        assert status == 429 and body["parameters"]["retry_after"] >= 1
        assert body["description"] == f"Too Many Requests: retry after {body['parameters']['retry_after']}"
        assert headers["Retry-After"] == str(body["parameters"]["retry_after"])
        assert server.counters["429_global"] == 1 and server.counters["early_global"] == 1  # the 7th came too early


def test_private_chat_burst_then_429_and_group_per_minute():
    with BotAPIServer(global_rate=None, chat_rate=1, chat_burst=2, group_per_minute=3) as server:
        private = [call(server, "sendMessage", chat_id=5, text="x")[0] for _ in range(3)]
        assert private == [200, 200, 429]
        assert call(server, "sendMessage", chat_id=6, text="x")[0] == 200  # other chats are not affected
        server.set_rate(chat_rate=None)
        group = [call(server, "sendMessage", chat_id=-300, text="x")[0] for _ in range(4)]
        assert group == [200, 200, 200, 429]
        assert server.counters["429_group"] == 1


# -- updates ---------------------------------------------------------------------------------


def test_get_updates_long_polls_and_confirms_by_offset(botapi_server):
    start = time.monotonic()
    code, body, _ = call(botapi_server, "getUpdates", timeout=1)
    assert code == 200 and body["result"] == [] and time.monotonic() - start >= 0.9
    threading.Timer(0.3, lambda: botapi_server.push_message(42, "/start")).start()
    start = time.monotonic()
    body = call(botapi_server, "getUpdates", timeout=5)[1]
    assert time.monotonic() - start < 3  # woken by the update, not by the timeout
    update = body["result"][0]
    assert update["message"]["text"] == "/start"
    assert update["message"]["entities"] == [{"offset": 0, "length": 6, "type": "bot_command"}]
    # not confirmed yet: delivered again; a higher offset confirms it
    assert call(botapi_server, "getUpdates")[1]["result"][0]["update_id"] == update["update_id"]
    assert call(botapi_server, "getUpdates", offset=update["update_id"] + 1)[1]["result"] == []
    assert botapi_server.updates_pending() == []


def test_a_second_poller_terminates_the_first_with_409(botapi_server):
    results = {}

    def first():
        results["first"] = call(botapi_server, "getUpdates", timeout=5)

    t = threading.Thread(target=first)
    t.start()
    time.sleep(0.3)
    call(botapi_server, "getUpdates", timeout=0)
    t.join(5)
    code, body, _ = results["first"]
    assert code == 409 and body["description"].startswith("Conflict: terminated by other getUpdates request")


def test_commands_callbacks_edits_members_and_photos(botapi_server):
    cmds = [{"command": "start", "description": "Start"}, {"command": "help", "description": "Help"}]
    assert call(botapi_server, "setMyCommands", commands=cmds)[0] == 200
    assert call(botapi_server, "getMyCommands")[1]["result"] == cmds
    assert call(botapi_server, "setMyCommands", commands=[{"command": "Bad-One", "description": "x"}])[1][
        "description"] == "Bad Request: BOT_COMMAND_INVALID"

    mid = call(botapi_server, "sendMessage", chat_id=42, text="pick")[1]["result"]["message_id"]
    query = botapi_server.push_callback(42, "topic:kz", message_id=mid)["callback_query"]
    assert query["message"]["message_id"] == mid and query["data"] == "topic:kz"
    assert call(botapi_server, "answerCallbackQuery", callback_query_id=query["id"], text="ok")[0] == 200
    assert call(botapi_server, "answerCallbackQuery", callback_query_id="nope")[0] == 400
    assert call(botapi_server, "editMessageText", chat_id=42, message_id=mid, text="picked")[0] == 200
    assert call(botapi_server, "editMessageText", chat_id=42, message_id=mid, text="picked")[1][
        "description"].startswith("Bad Request: message is not modified")
    assert call(botapi_server, "editMessageText", chat_id=42, message_id=999, text="x")[0] == 400
    assert botapi_server.answers()[0]["text"] == "ok" and botapi_server.edits(42)[0]["text"] == "picked"

    botapi_server.set_admin(-500, 1, "creator")
    assert call(botapi_server, "getChatMember", chat_id=-500, user_id=1)[1]["result"]["status"] == "creator"
    assert call(botapi_server, "getChatMember", chat_id=-500, user_id=2)[1]["result"]["status"] == "member"
    admins = call(botapi_server, "getChatAdministrators", chat_id=-500)[1]["result"]
    assert [a["user"]["id"] for a in admins] == [1]


async def test_ptb_bot_sees_the_right_exceptions(botapi_server):
    botapi_server.block(2)
    botapi_server.migrate(-3, -1003)
    botapi_server.fail_next(1, 429, retry_after=3, chat_id=4)
    async with telegram.Bot(botapi_server.token, base_url=botapi_server.base_url) as bot:
        assert (await bot.get_me()).username == botapi_server.bot_user["username"]
        with pytest.raises(telegram.error.Forbidden, match="blocked"):
            await bot.send_message(2, "x")
        with pytest.raises(telegram.error.ChatMigrated) as migrated:
            await bot.send_message(-3, "x")
        assert migrated.value.new_chat_id == -1003
        with pytest.raises(telegram.error.RetryAfter):
            await bot.send_message(4, "x")
        with pytest.raises(telegram.error.BadRequest, match="byte offset"):
            await bot.send_message(5, "<x>", parse_mode="HTML")
        png = _png(3, 2)
        photo = await bot.send_photo(6, png, caption="<b>chart</b>", parse_mode="HTML")
        assert (photo.photo[-1].width, photo.photo[-1].height) == (3, 2) and photo.caption == "chart"
        assert botapi_server.sent(6)[0]["photo_bytes"] == png
    # (generous timeouts: on a loaded CI machine PTB's 5 s default has run out here)
    slow_ok = telegram.request.HTTPXRequest(connect_timeout=30, read_timeout=30, pool_timeout=30)
    with pytest.raises(telegram.error.InvalidToken):
        async with telegram.Bot("1:wrong", base_url=botapi_server.base_url, request=slow_ok) as wrong:
            await wrong.get_me()


async def test_ptb_application_polls_and_answers(botapi_server):
    async def start(update, context):
        await update.message.reply_text("welcome", reply_markup=telegram.InlineKeyboardMarkup(
            [[telegram.InlineKeyboardButton("Topic", callback_data="t")]]))

    async def pressed(update, context):
        await update.callback_query.answer("done")

    app = ApplicationBuilder().token(botapi_server.token).base_url(botapi_server.base_url).build()
    app.add_handler(CommandHandler("start", start))
    app.add_handler(CallbackQueryHandler(pressed))
    async with app:
        await app.start()
        await app.updater.start_polling(poll_interval=0, timeout=1)
        botapi_server.push_message(42, "/start")
        sent = await botapi_server.wait_for_async(lambda: botapi_server.sent(42), timeout=10)
        assert sent[0]["text"] == "welcome"
        botapi_server.push_callback(42, "t")
        await botapi_server.wait_for_async(lambda: botapi_server.answers(), timeout=10)
        await app.updater.stop()
        await app.stop()
    assert botapi_server.answers()[0]["text"] == "done"
    assert botapi_server.updates_pending() == []  # PTB confirmed what it handled when it stopped


def _png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\x00\x00\x00" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
