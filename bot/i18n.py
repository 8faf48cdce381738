"""The bot's own words in English, Russian and Kazakh.

Templates are Telegram HTML. :func:`t` fills them with ``str.format``; every
value is escaped unless it is an :class:`Html` string, so text from users and
feeds can be passed straight in. A key missing in one language falls back to
English (a test keeps the three tables complete).
"""

from __future__ import annotations

from .models import LANGS

DEFAULT_LANG = "en"


class Html(str):
    """A string that is already Telegram HTML (it is not escaped again)."""


def escape(text: object) -> str:
    """Plain text as Telegram HTML text: ``< > &`` escaped (``Html`` passes as is)."""
    if text is None:
        return ""
    if isinstance(text, Html):
        return str(text)
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def lang_or_default(lang: str | None) -> str:
    return lang if lang in LANGS else DEFAULT_LANG


def _template(lang: str, key: str) -> str:
    table = STRINGS.get(lang_or_default(lang), {})
    if key in table:
        return table[key]
    return STRINGS[DEFAULT_LANG][key]


def t(lang: str | None, key: str, /, **values: object) -> str:
    """The string ``key`` in ``lang`` as HTML, with ``values`` escaped and filled in."""
    return _template(lang or DEFAULT_LANG, key).format(**{k: escape(v) for k, v in values.items()})


def t_plain(lang: str | None, key: str, /, **values: object) -> str:
    """The string ``key`` as plain text (for button labels and callback answers)."""
    return _template(lang or DEFAULT_LANG, key).format(**{k: str(v) for k, v in values.items()})


# Noun forms after a number: en (one, many), ru (one, few, many), kk (one form).
NOUNS = {
    "story": {"en": ("story", "stories"), "ru": ("история", "истории", "историй"), "kk": ("оқиға",)},
    "entry": {"en": ("entry", "entries"), "ru": ("запись", "записи", "записей"), "kk": ("жазба",)},
}


def plural(lang: str | None, n: int, noun: str) -> str:
    """``noun`` in the form that follows the number ``n`` in ``lang``."""
    forms = NOUNS[noun][lang_or_default(lang)]
    if len(forms) == 1:
        return forms[0]
    if len(forms) == 2:
        return forms[0] if n == 1 else forms[1]
    n = abs(n)
    if n % 10 == 1 and n % 100 != 11:
        return forms[0]
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return forms[1]
    return forms[2]


LANG_NAMES = {"en": "English", "ru": "Русский", "kk": "Қазақша"}

SETTINGS_HOWTO = {
    "en": "Change with:",
    "ru": "Как изменить:",
    "kk": "Өзгерту үшін:",
}

_SETTINGS_COMMANDS = (
    "\n/settings time 07:30"
    "\n/settings tz Europe/Moscow"
    "\n/settings lang en|ru|kk"
    "\n/settings mode instant|digest|both"
    "\n/settings quiet 23:00-07:00 | off"
    "\n/settings empty skip|send"
)

STRINGS: dict[str, dict[str, str]] = {
    "en": {
        # commands
        "welcome": (
            "👋 <b>newsbot</b> watches the news in English, Russian and Kazakh for the topics you "
            "choose. It folds the many reports of one event into one story, shows it in your "
            "language, alerts you as things happen and sends a daily digest.\n\n"
            "Tap a topic below to follow it. /help lists every command."
        ),
        "help": (
            "<b>Commands</b>\n"
            "/topics — follow or unfollow topics with buttons\n"
            "/subscribe &lt;topic&gt; — follow a topic\n"
            "/unsubscribe &lt;topic&gt; — stop following a topic\n"
            "/watch &lt;words&gt; — watch your own words (in every language)\n"
            "/unwatch &lt;words&gt; — stop watching words\n"
            "/watchlist — your watch words and their forms in other languages\n"
            "/digest — send my digest now\n"
            "/trend [topic] [days] — a chart of stories per day\n"
            "/settings — digest time, time zone, language, alerts or digest, quiet hours\n"
            "/stop — unsubscribe and delete my data\n\n"
            "In a group only the group's admins change settings."
        ),
        "help_admin": (
            "\n\n<b>Admin</b>\n/stats — feeds, items, subscribers, queue\n/feeds — the feeds\n"
            "/addfeed &lt;url&gt; &lt;lang&gt; — add a feed\n/removefeed &lt;id|url&gt; — remove a feed"
        ),
        "topics_header": "<b>Topics</b> — tap to follow or unfollow:",
        "topics_none": "No topics are configured yet.",
        "btn_on": "✅ {name}",
        "btn_off": "▫️ {name}",
        "subscribed": "✅ You now follow <b>{topic}</b>.",
        "already_subscribed": "You already follow <b>{topic}</b>.",
        "unsubscribed": "You no longer follow <b>{topic}</b>.",
        "not_subscribed": "You were not following <b>{topic}</b>.",
        "unknown_topic": "I don't know the topic “{topic}”. Topics: {ids}",
        "usage_subscribe": "Usage: /subscribe &lt;topic&gt;\nTopics: {ids}",
        "usage_unsubscribe": "Usage: /unsubscribe &lt;topic&gt;\nTopics: {ids}",
        "cb_subscribed": "Following: {topic}",
        "cb_unsubscribed": "Unfollowed: {topic}",
        "cb_unknown": "This button is out of date.",
        "usage_watch": (
            "Usage: /watch &lt;words&gt; — for example <code>/watch Zhanaozen</code> or "
            "<code>/watch oil strike, Mangystau</code> (commas separate phrases)."
        ),
        "usage_unwatch": "Usage: /unwatch &lt;words&gt; — written as /watchlist shows them.",
        "watch_added": "👀 Now watching:",
        "watch_known": "Already watching: {words}",
        "watch_bad": "Skipped “{word}”: a watch word is 2 to 64 characters long.",
        "watch_limit": "You can watch at most {n} words; remove some with /unwatch.",
        "watch_preview": "In the last three days these words would have caught {n} {stories}.",
        "watch_preview_none": (
            "Nothing in the last three days would have matched these words: they may be rare, "
            "or misspelled."
        ),
        "watch_preview_examples": "For example:",
        "watch_preview_unavailable": "I could not check the last three days just now.",
        "unwatch_removed": "Stopped watching: {words}",
        "unwatch_missing": "Not on your watch list: {words}",
        "watchlist_empty": "Your watch list is empty. Add words with /watch.",
        "watchlist_header": "<b>Your watch words</b> (with their forms in other languages):",
        "digest_queued": "📰 Your digest is on its way.",
        "digest_unavailable": "The digest cannot be built right now; please try again later.",
        "unknown_input": "I answer commands only: /help lists them, /topics shows the topics.",
        "settings": (
            "<b>Settings</b>\nDigest time: {time} ({tz})\nLanguage: {lang}\nMode: {mode}\n"
            "Quiet hours: {quiet}\nEmpty digests: {empty}"
        ),
        "quiet_off": "off",
        "empty_skip": "skipped",
        "empty_send": "sent",
        "mode_instant": "instant alerts only",
        "mode_digest": "daily digest only",
        "mode_both": "alerts and a daily digest",
        "btn_mode_instant": "Alerts",
        "btn_mode_digest": "Digest",
        "btn_mode_both": "Both",
        "btn_empty_skip": "Skip empty digests",
        "btn_empty_send": "Send empty digests",
        "bad_time": "“{value}” is not a time: use HH:MM, for example 07:30.",
        "bad_tz": "I don't know the time zone “{value}”: use a name such as Europe/Moscow or Asia/Almaty.",
        "bad_lang": "Choose one of: en, ru, kk.",
        "bad_mode": "Choose one of: instant, digest, both.",
        "bad_quiet": "Write quiet hours as HH:MM-HH:MM (for example 23:00-07:00), or off.",
        "bad_empty": "Write /settings empty skip or /settings empty send.",
        "usage_settings": "Usage:",
        "saved": "Saved.",
        "stop_done": (
            "You are unsubscribed, and your settings, topics and watch words are deleted. "
            "Send /start to begin again."
        ),
        "stop_nothing": "There was nothing to delete. Send /start to subscribe.",
        "not_allowed": "Sorry, this bot is private: this chat cannot subscribe.",
        "admins_only_group": "In a group only its admins can change the bot's settings.",
        "admin_only": "This command is for the bot's administrators.",
        "error": "Something went wrong on my side; please try again.",
        # admin
        "stats": (
            "<b>Stats</b>\nFeeds: {feeds} active, {failing} failing, {retired} retired\n"
            "Items: {items}\nStories: {stories}\nSubscribers: {subscribers} ({paused} paused)\n"
            "Outbox: {pending} waiting, {failed} failed, {sent} sent"
        ),
        "feeds_header": "<b>Feeds</b> ({n}):",
        "feeds_none": "No feeds.",
        "feed_failing": "failing ×{n}: {error}",
        "feed_retired": "retired",
        "usage_addfeed": "Usage: /addfeed &lt;url&gt; &lt;lang&gt; — lang is en, ru or kk.",
        "addfeed_bad_url": "Only http and https URLs with a host name can be added.",
        "addfeed_refused": "Not added: {reason}",
        "addfeed_exists": "That feed is already polled (#{id}).",
        "addfeed_ok": "Added feed #{id} “{name}” ({lang}, {n} {entries} now).",
        "usage_removefeed": "Usage: /removefeed &lt;id|url&gt;",
        "removefeed_ok": "Removed feed #{id} “{name}”; its items stay.",
        "removefeed_unknown": "There is no feed {feed}.",
        # rendering
        "more_sources": "+{n}",
        "translated_from": "translated from {lang}",
        "why": "why: {reason}",
        "your_words": "your words: {words}",
        "no_title": "(no title)",
        "watch_section": "Your watch words",
        "digest_title": "📰 <b>Digest for {day}</b>",
        "digest_title_nodate": "📰 <b>Your digest</b>",
        "digest_count": "{n} {stories}",
        "digest_empty": "Nothing matched your topics or watch words since the last digest. I keep watching.",
        "continued": "(continued)",
        "update_prefix": "🔄 <i>Update: more reports of this story</i>",
        # command menu
        "cmd_start": "Start: what the bot does and the topics",
        "cmd_help": "All commands",
        "cmd_topics": "Follow or unfollow topics",
        "cmd_subscribe": "Follow a topic",
        "cmd_unsubscribe": "Stop following a topic",
        "cmd_watch": "Watch your own words",
        "cmd_unwatch": "Stop watching words",
        "cmd_watchlist": "Your watch words",
        "cmd_digest": "Send my digest now",
        "cmd_settings": "Digest time, time zone, language, mode",
        "cmd_trend": "Chart of stories per topic per day",
        "trend_usage": "Usage: /trend [topic] [days], e.g. <code>/trend kz-unrest 30</code> (days 1-90).",
        "trend_caption": "Matched stories per day, last {days} days",
        "cmd_stop": "Unsubscribe and delete my data",
    },
    "ru": {
        "welcome": (
            "👋 <b>newsbot</b> следит за новостями на английском, русском и казахском по темам, "
            "которые вы выберете. Он собирает множество сообщений об одном событии в один сюжет, "
            "показывает его на вашем языке, сразу оповещает о важном и присылает ежедневный дайджест.\n\n"
            "Нажмите на тему ниже, чтобы подписаться. Все команды — /help."
        ),
        "help": (
            "<b>Команды</b>\n"
            "/topics — подписки на темы кнопками\n"
            "/subscribe &lt;тема&gt; — подписаться на тему\n"
            "/unsubscribe &lt;тема&gt; — отписаться от темы\n"
            "/watch &lt;слова&gt; — следить за своими словами (на всех языках)\n"
            "/unwatch &lt;слова&gt; — перестать следить за словами\n"
            "/watchlist — ваши слова и их формы на других языках\n"
            "/digest — прислать дайджест сейчас\n"
            "/trend [тема] [дни] — график сюжетов по дням\n"
            "/settings — время дайджеста, часовой пояс, язык, режим, тихие часы\n"
            "/stop — отписаться и удалить мои данные\n\n"
            "В группе настройки меняют только её администраторы."
        ),
        "help_admin": (
            "\n\n<b>Администрирование</b>\n/stats — ленты, записи, подписчики, очередь\n/feeds — ленты\n"
            "/addfeed &lt;url&gt; &lt;язык&gt; — добавить ленту\n/removefeed &lt;id|url&gt; — убрать ленту"
        ),
        "topics_header": "<b>Темы</b> — нажмите, чтобы подписаться или отписаться:",
        "topics_none": "Темы пока не настроены.",
        "btn_on": "✅ {name}",
        "btn_off": "▫️ {name}",
        "subscribed": "✅ Вы подписаны на тему <b>{topic}</b>.",
        "already_subscribed": "Вы уже подписаны на тему <b>{topic}</b>.",
        "unsubscribed": "Вы отписались от темы <b>{topic}</b>.",
        "not_subscribed": "Вы не были подписаны на тему <b>{topic}</b>.",
        "unknown_topic": "Темы «{topic}» нет. Темы: {ids}",
        "usage_subscribe": "Как использовать: /subscribe &lt;тема&gt;\nТемы: {ids}",
        "usage_unsubscribe": "Как использовать: /unsubscribe &lt;тема&gt;\nТемы: {ids}",
        "cb_subscribed": "Подписка: {topic}",
        "cb_unsubscribed": "Отписка: {topic}",
        "cb_unknown": "Эта кнопка устарела.",
        "usage_watch": (
            "Как использовать: /watch &lt;слова&gt; — например, <code>/watch Жанаозен</code> или "
            "<code>/watch забастовка нефтяников, Мангистау</code> (фразы разделяйте запятыми)."
        ),
        "usage_unwatch": "Как использовать: /unwatch &lt;слова&gt; — так, как их показывает /watchlist.",
        "watch_added": "👀 Теперь слежу за словами:",
        "watch_known": "Уже в списке: {words}",
        "watch_bad": "Пропущено «{word}»: слово для слежения — от 2 до 64 символов.",
        "watch_limit": "Можно следить не более чем за {n} словами; лишние уберите командой /unwatch.",
        "watch_preview": "За последние три дня эти слова нашли бы {n} {stories}.",
        "watch_preview_none": (
            "За последние три дня этим словам ничего не соответствовало: возможно, они редкие "
            "или написаны с ошибкой."
        ),
        "watch_preview_examples": "Например:",
        "watch_preview_unavailable": "Сейчас не получилось проверить последние три дня.",
        "unwatch_removed": "Больше не слежу: {words}",
        "unwatch_missing": "Этих слов нет в вашем списке: {words}",
        "watchlist_empty": "Ваш список слов пуст. Добавьте слова командой /watch.",
        "watchlist_header": "<b>Ваши слова</b> (с формами на других языках):",
        "digest_queued": "📰 Дайджест уже в пути.",
        "digest_unavailable": "Сейчас не удаётся собрать дайджест; попробуйте позже.",
        "unknown_input": "Я отвечаю только на команды: их список — /help, темы — /topics.",
        "settings": (
            "<b>Настройки</b>\nВремя дайджеста: {time} ({tz})\nЯзык: {lang}\nРежим: {mode}\n"
            "Тихие часы: {quiet}\nПустые дайджесты: {empty}"
        ),
        "quiet_off": "нет",
        "empty_skip": "не присылать",
        "empty_send": "присылать",
        "mode_instant": "только оповещения",
        "mode_digest": "только ежедневный дайджест",
        "mode_both": "оповещения и ежедневный дайджест",
        "btn_mode_instant": "Оповещения",
        "btn_mode_digest": "Дайджест",
        "btn_mode_both": "Всё",
        "btn_empty_skip": "Не присылать пустые",
        "btn_empty_send": "Присылать пустые",
        "bad_time": "«{value}» — не время: пишите ЧЧ:ММ, например 07:30.",
        "bad_tz": "Не знаю часового пояса «{value}»: укажите название вроде Europe/Moscow или Asia/Almaty.",
        "bad_lang": "Выберите одно из: en, ru, kk.",
        "bad_mode": "Выберите одно из: instant, digest, both.",
        "bad_quiet": "Тихие часы пишутся как ЧЧ:ММ-ЧЧ:ММ (например, 23:00-07:00) или off.",
        "bad_empty": "Напишите /settings empty skip или /settings empty send.",
        "usage_settings": "Как использовать:",
        "saved": "Сохранено.",
        "stop_done": (
            "Вы отписаны, ваши настройки, темы и слова удалены. Чтобы начать заново, отправьте /start."
        ),
        "stop_nothing": "Удалять нечего. Чтобы подписаться, отправьте /start.",
        "not_allowed": "Извините, это закрытый бот: этот чат не может подписаться.",
        "admins_only_group": "В группе настройки бота меняют только её администраторы.",
        "admin_only": "Эта команда — только для администраторов бота.",
        "error": "У меня что-то пошло не так; попробуйте ещё раз.",
        "stats": (
            "<b>Статистика</b>\nЛенты: {feeds} активных, {failing} с ошибками, {retired} выключено\n"
            "Записи: {items}\nСюжеты: {stories}\nПодписчики: {subscribers} ({paused} на паузе)\n"
            "Очередь: {pending} ждут, {failed} не доставлено, {sent} отправлено"
        ),
        "feeds_header": "<b>Ленты</b> ({n}):",
        "feeds_none": "Лент нет.",
        "feed_failing": "ошибки ×{n}: {error}",
        "feed_retired": "выключена",
        "usage_addfeed": "Как использовать: /addfeed &lt;url&gt; &lt;язык&gt; — язык: en, ru или kk.",
        "addfeed_bad_url": "Добавить можно только адрес http или https с именем хоста.",
        "addfeed_refused": "Не добавлена: {reason}",
        "addfeed_exists": "Эта лента уже опрашивается (#{id}).",
        "addfeed_ok": "Лента #{id} «{name}» добавлена ({lang}, сейчас {n} {entries}).",
        "usage_removefeed": "Как использовать: /removefeed &lt;id|url&gt;",
        "removefeed_ok": "Лента #{id} «{name}» убрана; её записи остаются.",
        "removefeed_unknown": "Ленты {feed} нет.",
        "more_sources": "+{n}",
        "translated_from": "перевод с {lang}",
        "why": "почему: {reason}",
        "your_words": "ваши слова: {words}",
        "no_title": "(без заголовка)",
        "watch_section": "Ваши слова",
        "digest_title": "📰 <b>Дайджест за {day}</b>",
        "digest_title_nodate": "📰 <b>Ваш дайджест</b>",
        "digest_count": "{n} {stories}",
        "digest_empty": (
            "С прошлого дайджеста ничего не совпало с вашими темами и словами. Продолжаю следить."
        ),
        "continued": "(продолжение)",
        "update_prefix": "🔄 <i>Обновление: о сюжете сообщают новые источники</i>",
        "cmd_start": "Начало: что умеет бот и темы",
        "cmd_help": "Все команды",
        "cmd_topics": "Подписки на темы",
        "cmd_subscribe": "Подписаться на тему",
        "cmd_unsubscribe": "Отписаться от темы",
        "cmd_watch": "Следить за своими словами",
        "cmd_unwatch": "Перестать следить за словами",
        "cmd_watchlist": "Ваши слова",
        "cmd_digest": "Прислать дайджест сейчас",
        "cmd_settings": "Время, часовой пояс, язык, режим",
        "cmd_trend": "График сюжетов по темам и дням",
        "trend_usage": "Формат: /trend [тема] [дни], например <code>/trend kz-unrest 30</code> (от 1 до 90 дней).",
        "trend_caption": "Сюжеты по дням за последние {days} дн.",
        "cmd_stop": "Отписаться и удалить данные",
    },
    "kk": {
        "welcome": (
            "👋 <b>newsbot</b> сіз таңдаған тақырыптар бойынша ағылшын, орыс және қазақ тіліндегі "
            "жаңалықтарды бақылайды. Бір оқиға туралы көп хабарды бір сюжетке біріктіріп, оны сіздің "
            "тіліңізде көрсетеді, маңызды оқиға туралы бірден хабарлайды және күн сайын дайджест "
            "жібереді.\n\n"
            "Тақырыпқа жазылу үшін төмендегі батырманы басыңыз. Барлық командалар — /help."
        ),
        "help": (
            "<b>Командалар</b>\n"
            "/topics — тақырыптарға батырмамен жазылу\n"
            "/subscribe &lt;тақырып&gt; — тақырыпқа жазылу\n"
            "/unsubscribe &lt;тақырып&gt; — тақырыптан бас тарту\n"
            "/watch &lt;сөздер&gt; — өз сөздеріңізді бақылау (барлық тілде)\n"
            "/unwatch &lt;сөздер&gt; — сөздерді бақылауды тоқтату\n"
            "/watchlist — сөздеріңіз және олардың басқа тілдердегі нұсқалары\n"
            "/digest — дайджестті қазір жіберу\n"
            "/trend [тақырып] [күн] — күндік сюжеттер графигі\n"
            "/settings — дайджест уақыты, уақыт белдеуі, тіл, режим, тыныш сағаттар\n"
            "/stop — жазылымды тоқтатып, деректерімді өшіру\n\n"
            "Топта баптауларды тек топ әкімшілері өзгертеді."
        ),
        "help_admin": (
            "\n\n<b>Әкімші</b>\n/stats — арналар, жазбалар, жазылушылар, кезек\n/feeds — арналар\n"
            "/addfeed &lt;url&gt; &lt;тіл&gt; — арна қосу\n/removefeed &lt;id|url&gt; — арнаны алып тастау"
        ),
        "topics_header": "<b>Тақырыптар</b> — жазылу не бас тарту үшін басыңыз:",
        "topics_none": "Әзірге ешбір тақырып бапталмаған.",
        "btn_on": "✅ {name}",
        "btn_off": "▫️ {name}",
        "subscribed": "✅ Енді сіз <b>{topic}</b> тақырыбын бақылайсыз.",
        "already_subscribed": "Сіз <b>{topic}</b> тақырыбын бұрыннан бақылайсыз.",
        "unsubscribed": "Сіз енді <b>{topic}</b> тақырыбын бақыламайсыз.",
        "not_subscribed": "Сіз <b>{topic}</b> тақырыбына жазылмаған едіңіз.",
        "unknown_topic": "«{topic}» деген тақырып жоқ. Тақырыптар: {ids}",
        "usage_subscribe": "Қолданылуы: /subscribe &lt;тақырып&gt;\nТақырыптар: {ids}",
        "usage_unsubscribe": "Қолданылуы: /unsubscribe &lt;тақырып&gt;\nТақырыптар: {ids}",
        "cb_subscribed": "Жазылдыңыз: {topic}",
        "cb_unsubscribed": "Бас тарттыңыз: {topic}",
        "cb_unknown": "Бұл батырма ескірген.",
        "usage_watch": (
            "Қолданылуы: /watch &lt;сөздер&gt; — мысалы, <code>/watch Жаңаөзен</code> немесе "
            "<code>/watch мұнайшылар ереуілі, Маңғыстау</code> (тіркестерді үтірмен бөліңіз)."
        ),
        "usage_unwatch": "Қолданылуы: /unwatch &lt;сөздер&gt; — /watchlist көрсеткендей жазыңыз.",
        "watch_added": "👀 Енді бақылаймын:",
        "watch_known": "Бұрыннан бақылауда: {words}",
        "watch_bad": "«{word}» өткізілді: бақылау сөзі 2-ден 64 таңбаға дейін болуы керек.",
        "watch_limit": "Ең көбі {n} сөзді бақылауға болады; артығын /unwatch арқылы алып тастаңыз.",
        "watch_preview": "Соңғы үш күнде бұл сөздер {n} {stories} тапқан болар еді.",
        "watch_preview_none": (
            "Соңғы үш күнде бұл сөздерге сәйкес ештеңе болмады: олар сирек кездесетін немесе "
            "қате жазылған болуы мүмкін."
        ),
        "watch_preview_examples": "Мысалы:",
        "watch_preview_unavailable": "Соңғы үш күнді қазір тексере алмадым.",
        "unwatch_removed": "Енді бақыламаймын: {words}",
        "unwatch_missing": "Бұл сөздер тізіміңізде жоқ: {words}",
        "watchlist_empty": "Бақылау тізіміңіз бос. Сөз қосу үшін /watch жіберіңіз.",
        "watchlist_header": "<b>Бақылау сөздеріңіз</b> (басқа тілдердегі нұсқаларымен):",
        "digest_queued": "📰 Дайджестіңіз жолда.",
        "digest_unavailable": "Дайджестті қазір жасау мүмкін емес; кейінірек қайталап көріңіз.",
        "unknown_input": "Мен тек командаларға жауап беремін: тізімі — /help, тақырыптар — /topics.",
        "settings": (
            "<b>Баптаулар</b>\nДайджест уақыты: {time} ({tz})\nТіл: {lang}\nРежим: {mode}\n"
            "Тыныш сағаттар: {quiet}\nБос дайджест: {empty}"
        ),
        "quiet_off": "жоқ",
        "empty_skip": "жіберілмейді",
        "empty_send": "жіберіледі",
        "mode_instant": "тек жедел хабарламалар",
        "mode_digest": "тек күнделікті дайджест",
        "mode_both": "хабарламалар және күнделікті дайджест",
        "btn_mode_instant": "Хабарламалар",
        "btn_mode_digest": "Дайджест",
        "btn_mode_both": "Екеуі де",
        "btn_empty_skip": "Бос дайджестті жібермеу",
        "btn_empty_send": "Бос дайджестті жіберу",
        "bad_time": "«{value}» уақыт емес: СС:ММ түрінде жазыңыз, мысалы 07:30.",
        "bad_tz": (
            "«{value}» уақыт белдеуін білмеймін: Europe/Moscow немесе Asia/Almaty сияқты атауды жазыңыз."
        ),
        "bad_lang": "Біреуін таңдаңыз: en, ru, kk.",
        "bad_mode": "Біреуін таңдаңыз: instant, digest, both.",
        "bad_quiet": "Тыныш сағаттарды СС:ММ-СС:ММ түрінде (мысалы, 23:00-07:00) немесе off деп жазыңыз.",
        "bad_empty": "/settings empty skip немесе /settings empty send деп жазыңыз.",
        "usage_settings": "Қолданылуы:",
        "saved": "Сақталды.",
        "stop_done": (
            "Жазылымыңыз тоқтатылды, баптауларыңыз, тақырыптарыңыз және сөздеріңіз өшірілді. "
            "Қайта бастау үшін /start жіберіңіз."
        ),
        "stop_nothing": "Өшіретін ештеңе жоқ. Жазылу үшін /start жіберіңіз.",
        "not_allowed": "Кешіріңіз, бұл жабық бот: бұл чат жазыла алмайды.",
        "admins_only_group": "Топта боттың баптауларын тек топ әкімшілері өзгерте алады.",
        "admin_only": "Бұл команда тек бот әкімшілеріне арналған.",
        "error": "Менің тарапымнан қате шықты; қайталап көріңіз.",
        "stats": (
            "<b>Статистика</b>\nАрналар: {feeds} белсенді, {failing} қатемен, {retired} өшірілген\n"
            "Жазбалар: {items}\nСюжеттер: {stories}\nЖазылушылар: {subscribers} ({paused} кідіртілген)\n"
            "Кезек: {pending} күтуде, {failed} жеткізілмеді, {sent} жіберілді"
        ),
        "feeds_header": "<b>Арналар</b> ({n}):",
        "feeds_none": "Арналар жоқ.",
        "feed_failing": "қате ×{n}: {error}",
        "feed_retired": "өшірілген",
        "usage_addfeed": "Қолданылуы: /addfeed &lt;url&gt; &lt;тіл&gt; — тіл: en, ru немесе kk.",
        "addfeed_bad_url": "Тек хост атауы бар http және https мекенжайларын қосуға болады.",
        "addfeed_refused": "Қосылмады: {reason}",
        "addfeed_exists": "Бұл арна бұрыннан сұралып тұр (#{id}).",
        "addfeed_ok": "#{id} «{name}» арнасы қосылды ({lang}, қазір {n} {entries}).",
        "usage_removefeed": "Қолданылуы: /removefeed &lt;id|url&gt;",
        "removefeed_ok": "#{id} «{name}» арнасы алынды; оның жазбалары сақталады.",
        "removefeed_unknown": "{feed} деген арна жоқ.",
        "more_sources": "+{n}",
        "translated_from": "{lang} тілінен аударылған",
        "why": "себебі: {reason}",
        "your_words": "сіздің сөздеріңіз: {words}",
        "no_title": "(тақырыпсыз)",
        "watch_section": "Сіздің сөздеріңіз",
        "digest_title": "📰 <b>{day} дайджесті</b>",
        "digest_title_nodate": "📰 <b>Сіздің дайджестіңіз</b>",
        "digest_count": "{n} {stories}",
        "digest_empty": (
            "Соңғы дайджесттен бері тақырыптарыңызға не сөздеріңізге сәйкес ештеңе болмады. "
            "Бақылауды жалғастырамын."
        ),
        "continued": "(жалғасы)",
        "update_prefix": "🔄 <i>Жаңарту: бұл сюжет туралы жаңа хабарлар бар</i>",
        "cmd_start": "Бастау: бот не істейді және тақырыптар",
        "cmd_help": "Барлық командалар",
        "cmd_topics": "Тақырыптарға жазылу",
        "cmd_subscribe": "Тақырыпқа жазылу",
        "cmd_unsubscribe": "Тақырыптан бас тарту",
        "cmd_watch": "Өз сөздеріңізді бақылау",
        "cmd_unwatch": "Сөздерді бақылауды тоқтату",
        "cmd_watchlist": "Бақылау сөздеріңіз",
        "cmd_digest": "Дайджестті қазір жіберу",
        "cmd_settings": "Уақыт, белдеу, тіл, режим",
        "cmd_trend": "Тақырыптар бойынша күндік сюжеттер графигі",
        "trend_usage": "Пішімі: /trend [тақырып] [күн], мысалы <code>/trend kz-unrest 30</code> (1-ден 90 күнге дейін).",
        "trend_caption": "Соңғы {days} күндегі сюжеттер",
        "cmd_stop": "Жазылымды тоқтатып, деректерді өшіру",
    },
}


def settings_usage(lang: str | None) -> str:
    """The /settings sub-commands, introduced in ``lang``."""
    return t(lang, "usage_settings") + _SETTINGS_COMMANDS


def settings_howto(lang: str | None) -> str:
    return SETTINGS_HOWTO[lang_or_default(lang)] + _SETTINGS_COMMANDS
