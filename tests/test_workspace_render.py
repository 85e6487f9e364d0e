"""The local workspace page's renderer: what the bot really sends (built by its own Block Kit builders) drawn as
HTML, each element it uses with the data the page posts back, the message chrome, modals as forms; and hostile
text (from alerts, users, URLs) that never becomes markup."""

from __future__ import annotations

from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import pytest

from bot.agent.answers import abstain_answer, howto_answer, status_answer
from bot.agent.status import IncidentView
from bot.knowledge.suggestions import RunbookHit, SimilarIncident, Suggestions
from bot.remediation.catalogue import Catalogue
from bot.rootcause.ranking import StoredRanking
from bot.slack.alert_groups import AlertLine
from bot.slack.blocks import IncidentCard, incident_message, joined_message
from bot.slack.remediation_blocks import PostActions, modal, request_message
from bot.slack.summary_blocks import Situation, Summary, cause_question
from bot.standin.store import Channel, Content, Message
from bot.standin.workspace import User
from bot.standin.workspace.mrkdwn import Names, mrkdwn, safe_href
from bot.standin.workspace.render import ephemeral_message, message_anchor, render_message, render_view
from knowledge.qa.search import Passage
from knowledge.rootcause.model import CauseCandidate, Evidence
from tests.remediation_support import catalogue_text

TS = "1773133200.000100"  # 2026-03-10 09:00 UTC
USERS = {
    user.id: user
    for user in (
        User("U0BOTINCIBOT", "incibot", "incibot", "incibot", is_bot=True),
        User("U0ALICE", "alice", "Alice Archer", "alice"),
        User("U0BOB", "bob", "Bob Baker", ""),
    )
}
CHANNELS = {"C0INCIDENTS": Channel("C0INCIDENTS", "incidents", False, 0, "U0ALICE")}
NAMES = Names({"U0ALICE": "alice"}, {"C0INCIDENTS": "incidents"}, {"S0ONCALL": "@oncall"})
OPENED = datetime(2026, 3, 10, 9, tzinfo=UTC)


class Tree(HTMLParser):
    """The elements of an HTML fragment (tag, attributes) and its text, as a browser would parse them."""

    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.feed(markup)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {name: value or "" for name, value in attrs}))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def find(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        wanted = {name.replace("_", "-"): value for name, value in attrs.items()}
        return [a for t, a in self.elements if t == tag and all(a.get(k) == v for k, v in wanted.items())]

    @property
    def shown(self) -> str:
        return "".join(self.text)


SAFE_TAGS = {
    "article", "header", "footer", "span", "div", "time", "h2", "h3", "b", "i", "s", "code", "pre", "blockquote",
    "br", "hr", "a", "button", "select", "option", "optgroup", "em", "form", "label", "input", "textarea", "ul",
    "ol", "li",
}  # fmt: skip


def assert_inert(markup: str) -> Tree:
    """Only the renderer's own tags, no event handlers, links only to http(s) or mailto."""
    tree = Tree(markup)
    for tag, attrs in tree.elements:
        assert tag in SAFE_TAGS, (tag, markup)
        assert not any(name.startswith("on") or name in ("src", "srcdoc", "formaction") for name in attrs), attrs
        if "href" in attrs:
            assert attrs["href"].split(":", 1)[0] in ("http", "https", "mailto"), attrs
        assert "style" not in attrs or (tag == "div" and attrs.get("class") == "att"), attrs
    return tree


def message(content: dict[str, Any], **overrides: Any) -> Message:
    fields: dict[str, Any] = {
        "channel_id": "C0INCIDENTS", "ts": TS, "user": "U0BOTINCIBOT",
        "content": Content(content["text"], content.get("blocks")), "thread_ts": None, "edited_ts": None,
        "edited_by": None,
    }  # fmt: skip
    fields.update(overrides)
    return Message(**fields)


def render(content: dict[str, Any], **kwargs: Any) -> Tree:
    return assert_inert(render_message(message(content), USERS, CHANNELS, **kwargs))


def card(**overrides: Any) -> IncidentCard:
    alerts = (
        AlertLine("PostgresDown", "firing", "primary unreachable", "http://prom/graph?g0=up&x=1"),
        AlertLine("CheckoutErrors", "firing", "5xx on checkout", None),
    )
    ranking = StoredRanking(
        (CauseCandidate("postgres", "service", 0.82, (Evidence("topology", "checkout calls postgres", 0.5),)),),
        stale=False,
        ranked_at=OPENED,
    )
    situation = Situation((("postgres", 1), ("checkout", 1)), (("PostgresDown", 1),), 2, OPENED)
    fields: dict[str, Any] = {
        "id": 7, "title": "Postgres down", "severity": "critical", "status": "triggered", "service": "postgres",
        "source": "alertmanager", "opened_at": OPENED, "alert_count": 2, "commander": None, "alerts": alerts,
        "incident_channel": "C0INCIDENTS", "summary": Summary(7, situation, ranking),
        "suggestions": Suggestions(
            (RunbookHit("db/postgres", "Postgres failover", 0.9, "Promote", "https://wiki.example/pg"),), 0.9,
            (SimilarIncident(3, "DB outage", 0.8, "resolved", OPENED, "failed over"),),
        ),
        "category": "database", "category_source": "model", "category_confidence": 0.91,
    }  # fmt: skip
    fields.update(overrides)
    return IncidentCard(**fields)


def test_incident_post_renders_every_block_with_its_actions() -> None:
    actions = Catalogue.parse(catalogue_text("http://127.0.0.1:9/")).actions
    tree = render(incident_message(card(actions=PostActions(tuple(actions), "dry-run"))))
    shown = tree.shown
    assert "[CRITICAL] Postgres down" in shown  # the header
    assert "What's going on" in shown and "Likely cause" in shown and "postgres" in shown
    assert len(tree.find("div", **{"class": "bk-field"})) == 7
    assert tree.find("hr")  # the summary's divider
    assert "Mar 10, 2026 09:00" in shown  # <!date^…> formatted
    assert tree.find("span", **{"class": "channel-mention", "data-channel": "C0INCIDENTS"})
    assert "#incidents" in shown
    assert tree.find("a", href="http://prom/graph?g0=up&x=1")  # "source 1", its &amp; undone once
    assert tree.find("a", href="https://wiki.example/pg")  # the runbook
    assert "\U0001f534" in shown  # :red_circle: as an emoji
    [ack] = tree.find("button", data_action_id="incident_acknowledge")
    assert ack == {
        "type": "button", "class": "bk-action btn btn-primary", "data-kind": "button",
        "data-action-id": "incident_acknowledge", "data-channel": "C0INCIDENTS", "data-ts": TS,
        "data-block-id": "incident-7", "data-value": "incident:7",
    }  # fmt: skip
    assert tree.find("button", data_action_id="incident_resolve", **{"class": "bk-action btn"})
    [menu] = tree.find("select", data_action_id="incident_classify")
    assert menu["data-kind"] == "static_select" and menu["data-block-id"] == "incident-7"
    assert tree.find("option", value="category:7:database", selected="")  # its initial option
    assert len([a for t, a in tree.elements if t == "option" and a.get("value", "").startswith("category:7:")]) == 10
    assert "\U0001f44d Looks right" in shown  # the vote buttons' :+1:
    assert [b["data-action-id"] for b in tree.find("button") if "remediation" in b["data-action-id"]] == [
        "remediation_run-0", "remediation_run-1", "remediation_run-2",
    ]  # fmt: skip


def test_remediation_request_buttons_keep_their_styles_and_value() -> None:
    value = {"request": 4, "fingerprint": "a" * 64}
    tree = render(request_message("*restart* requested by alice", value))
    styles = [(b["data-action-id"], b["class"]) for b in tree.find("button")]
    assert styles == [
        ("remediation_approve", "bk-action btn btn-primary"),
        ("remediation_deny", "bk-action btn btn-danger"),
        ("remediation_cancel", "bk-action btn"),
    ]
    assert {b["data-value"] for b in tree.find("button")} == {f"request:4:{'a' * 64}"}
    assert "<b>restart</b>" in render_message(message(request_message("*restart*", None)), USERS, CHANNELS)


def test_thread_replies_with_a_button_and_a_select() -> None:
    joined = render(joined_message("PostgresDown joined: same service", 7, range(3, 5)))
    assert joined.find("button", data_action_id="alerts_not_related", data_value="joined:7:3-4")
    candidates = (CauseCandidate("postgres", "service", 0.8), CauseCandidate("node-3", "node", 0.1))
    tree = render(cause_question("Resolved. What was the cause?", 7, candidates))
    [select] = tree.find("select", data_kind="static_select")
    assert select["data-block-id"] == "cause-confirm-7"
    assert tree.find("option", value="", disabled="", selected="")  # the placeholder while nothing is chosen
    assert "Pick the cause" in tree.shown and "postgres (80%)" in tree.shown


def test_agent_answers_accessory_quote_and_handover() -> None:
    incident = IncidentView(7, "Checkout down", "checkout", "triggered", OPENED, None, None, None)
    passage = Passage("faq/pay", "Payments FAQ", "https://docs.example/pay", "Refunds", "Refunds take\n5 days", 0.9)
    status = render({"text": "", "blocks": status_answer([incident], [passage]).blocks})
    accessory = status.find("button", data_action_id="agent_notify", data_value="7")
    assert accessory and "Notify me when resolved" in status.shown
    markup = render_message(message({"text": "", "blocks": howto_answer([passage]).blocks}), USERS, CHANNELS)
    assert '<blockquote class="mrkdwn-quote">Refunds take<br>5 days</blockquote>' in markup
    handover = render({"text": "", "blocks": abstain_answer(12).blocks})
    assert [b["data-action-id"] for b in handover.find("button")] == ["agent_report_problem", "agent_ask_human"]


def test_selects_overflow_images_and_unknown_blocks() -> None:
    blocks = [
        {"type": "section", "block_id": "who", "text": {"type": "mrkdwn", "text": "Assign"},
         "accessory": {"type": "users_select", "action_id": "assign", "initial_user": "U0BOB"}},
        {"type": "section", "text": {"type": "plain_text", "text": "More"},
         "accessory": {"type": "overflow", "action_id": "more", "options": [
             {"text": {"type": "plain_text", "text": "Mute"}, "value": "mute"}]}},
        {"type": "image", "image_url": "https://img.example/graph.png", "alt_text": "graph"},
        {"type": "context", "elements": [{"type": "image", "image_url": "javascript:alert(1)", "alt_text": "x"},
                                         {"type": "plain_text", "text": "ctx"}]},
        {"type": "video", "title": {"type": "plain_text", "text": "v"}},
    ]  # fmt: skip
    tree = render({"text": "fallback not shown", "blocks": blocks})
    assert tree.find("select", data_kind="users_select", data_block_id="who", data_action_id="assign")
    assert [a["value"] for t, a in tree.elements if t == "option"][:4] == ["", "U0ALICE", "U0BOB", "U0BOTINCIBOT"]
    assert tree.find("option", value="U0BOB", selected="")
    assert tree.find("select", data_kind="overflow", **{"class": "bk-action bk-overflow"})
    assert tree.find("a", href="https://img.example/graph.png")
    assert len(tree.find("a")) == 1  # the javascript: image is text
    assert "[unsupported block: video]" in tree.shown and "fallback not shown" not in tree.shown


def test_message_chrome_author_edited_thread_ephemeral_and_tombstone() -> None:
    said = message({"text": "hello *team*"}, user="U0ALICE", edited_ts="1773133300.000000")
    markup = render_message(said, USERS, CHANNELS, replies=3)
    tree = assert_inert(markup)
    assert tree.find("article", id=message_anchor("C0INCIDENTS", TS), data_ts=TS, data_channel="C0INCIDENTS")
    assert "alice" in tree.shown and "APP" not in tree.shown and "(edited)" in tree.shown
    assert "<b>team</b>" in markup and "09:00" in tree.shown
    assert tree.find("button", data_thread_ts=TS) and "3 replies" in tree.shown
    reply = assert_inert(render_message(message({"text": "ok"}, thread_ts=TS), USERS, CHANNELS))
    assert tree.find("article", data_thread_ts=TS) == [] and reply.find("article", data_thread_ts=TS)
    assert "Bob Baker" in Tree(render_message(message({"text": "x"}, user="U0BOB"), USERS, CHANNELS)).shown
    bot = assert_inert(render_message(message({"text": "x"}), USERS, CHANNELS))
    assert "APP" in bot.shown and "(edited)" not in bot.shown and "repl" not in bot.shown
    entry = {"ts": TS, "text": "Only you", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]}
    only = assert_inert(render_message(ephemeral_message("C0INCIDENTS", entry, "U0BOTINCIBOT"), USERS, CHANNELS,
                                       ephemeral=True))  # fmt: skip
    assert "Only visible to you" in only.shown and only.find("article", **{"class": "msg msg-ephemeral"})
    gone = Tree(render_message(message({"text": ""}, deleted=True), USERS, CHANNELS, replies=1))
    assert "This message was deleted." in gone.shown and "1 reply" in gone.shown


@pytest.mark.parametrize(
    ("text", "html"),
    [
        ("*bold* _italic_ ~strike~", "<b>bold</b> <i>italic</i> <s>strike</s>"),
        ("a `co*de*` b", "a <code>co*de*</code> b"),
        ("```line *1*\nline 2```", '<pre class="mrkdwn-pre">line *1*\nline 2</pre>'),
        ("snake_case_name 2*3*4 a*b", "snake_case_name 2*3*4 a*b"),
        ("x\n> quoted *b*\ny", 'x<br><blockquote class="mrkdwn-quote">quoted <b>b</b></blockquote>y'),
        ("&lt;not a tag&gt; &amp;amp;", "&lt;not a tag&gt; &amp;amp;"),
        ("*<https://a.example/?q=1&amp;r=2|a &amp; b>*",
         '<b><a href="https://a.example/?q=1&amp;r=2" target="_blank" rel="noopener noreferrer nofollow">'
         "a &amp; b</a></b>"),
        ("<mailto:ops@example.org|mail>", '<a href="mailto:ops@example.org" target="_blank" rel="noopener '
         'noreferrer nofollow">mail</a>'),
        ("<@U0ALICE> <@U0NOBODY> <!here> <!subteam^S0ONCALL>",
         '<span class="mention" data-user="U0ALICE">@alice</span> <span class="mention" data-user="U0NOBODY">'
         '@U0NOBODY</span> <span class="mention mention-broadcast">@here</span> <span class="mention" '
         'data-group="S0ONCALL">@oncall</span>'),
        ("<!date^1773133200^{date_num} {time_secs}|fallback>",
         '<time datetime="2026-03-10T09:00:00+00:00" title="fallback">2026-03-10 09:00:00</time>'),
        ("<!date^99999999999999^{date}|when>", "when"),
        (":fire: :not_an_emoji: 10:30:00", "\U0001f525 :not_an_emoji: 10:30:00"),
    ],
)  # fmt: skip
def test_mrkdwn(text: str, html: str) -> None:
    assert mrkdwn(text, NAMES) == html


HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "<javascript:alert(1)|click me>",
    "<JavaScript:alert(1)>",
    "<data:text/html;base64,PHNjcmlwdD4=|x>",
    '<https://ok.example/"onmouseover="alert(1)|x>',
    '<https://ok.example|label"><script>alert(1)</script>>',
    "*</b><script>x</script>*",
    "`</code><img src=x onerror=alert(1)>`",
    "```</pre><iframe src=javascript:alert(1)>```",
    "\ue0000\ue001 \ue000 sentinel <@U0ALICE> \ue0001\ue001",
    '<@U0ALICE|"><svg onload=alert(1)>> <#C1|<b>x</b>> <!subteam^S1|"><b>>',
    '<!date^1^{date}^https://x|"><img src=x onerror=alert(1)>>',
    "&lt;img src=x onerror=alert(1)&gt; &amp;lt;script&amp;gt;",
    "> <style>body{display:none}</style>",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_mrkdwn_stays_text(text: str) -> None:
    for blocks in (None, [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]):
        tree = render({"text": text, "blocks": blocks})
        assert tree.find("a") == [] or all(a["href"].startswith("https://ok.example") for a in tree.find("a"))
        assert "\ue000" not in tree.shown and "\ue001" not in tree.shown


def test_hostile_alert_through_the_bots_builders_is_shown_verbatim() -> None:
    evil = '<script>alert(1)</script>"><img src=x onerror=alert(1)> <!channel> *x*'
    alerts = (AlertLine(evil, "firing", evil, "javascript:alert(1)"),)
    post = incident_message(card(title=evil, service=evil, source=evil, alerts=alerts, incident_channel=evil))
    tree = render(post)
    assert tree.shown.count("<script>alert(1)</script>") >= 4  # header, field, alert line, context: as text
    assert tree.find("span", **{"class": "mention mention-broadcast"}) == []  # the bot escaped <!channel>


def test_hostile_attribute_values_are_quoted() -> None:
    evil = '"><img src=x onerror=alert(1)>'
    blocks = [
        {"type": "actions", "block_id": evil, "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": evil}, "action_id": evil, "value": evil,
             "url": "javascript:alert(1)", "style": evil, "confirm": {"title": {"type": "plain_text", "text": evil}}},
            {"type": "static_select", "action_id": "m", "placeholder": {"type": "plain_text", "text": evil},
             "options": [{"text": {"type": "plain_text", "text": evil}, "value": evil}],
             "option_groups": [{"label": {"type": "plain_text", "text": evil}, "options": []}]},
        ]},
        {"type": "header", "text": {"type": "plain_text", "text": evil}},
        {"type": evil},
    ]  # fmt: skip
    said = message({"text": "x", "blocks": blocks}, channel_id=evil, ts=evil, user=evil, thread_ts=evil)
    tree = assert_inert(render_message(said, {}, {}))
    [button] = tree.find("button", data_action_id=evil)
    assert button["data-value"] == evil and button["data-block-id"] == evil and button["data-channel"] == evil
    assert "data-url" not in button and button["class"] == "bk-action btn"
    assert tree.find("option", value=evil) and tree.find("optgroup", label=evil)


def test_links_only_to_http_https_and_mailto() -> None:
    assert safe_href("https://a.example/x?y=1") == "https://a.example/x?y=1"
    assert safe_href("mailto:ops@example.org") == "mailto:ops@example.org"
    refused = (
        "javascript:alert(1)", "JAVASCRIPT:alert(1)", "data:text/html,x", "vbscript:x", "//evil.example", "https://",
        "http://a.example/\u202e", "https://a.example/ x", "file:///etc/passwd", "mailto:",
    )  # fmt: skip
    for url in refused:
        assert safe_href(url) is None, url


def test_a_modal_renders_as_a_form_named_by_input_blocks() -> None:
    [action] = [a for a in Catalogue.parse(catalogue_text("http://127.0.0.1:9/")).actions if a.name == "restart"]
    view = modal(7, action, {"service": "checkout"}, "POST http://127.0.0.1:9/", "dry-run")
    view["blocks"].append(
        {"type": "input", "block_id": "mode", "optional": True, "label": {"type": "plain_text", "text": "Mode"},
         "element": {"type": "static_select", "action_id": "value", "options": [
             {"text": {"type": "plain_text", "text": "Fast"}, "value": "fast"}],
             "initial_option": {"text": {"type": "plain_text", "text": "Fast"}, "value": "fast"}}}
    )  # fmt: skip
    view |= {"id": "V0ABC"}
    tree = assert_inert(render_view(view, errors={"param-replicas": "must be at most 10"}))
    assert tree.find("form", data_view_id="V0ABC", data_callback_id="remediation_request")
    assert "Run an action" in tree.shown and "restart" in tree.shown and "dry run" in tree.shown
    [service] = tree.find("input", name="param-service")
    assert service["value"] == "checkout" and "required" in service and service["data-action-id"] == "value"
    assert tree.find("input", name="param-replicas", maxlength="9")
    assert "must be at most 10" in tree.shown and "a whole number from 1 to 10" in tree.shown
    [mode] = tree.find("select", name="mode")
    assert "bk-action" not in mode["class"] and "required" not in mode  # sent on submit; optional
    assert tree.find("option", value="fast", selected="") and "(optional)" in tree.shown
    assert tree.find("button", type="submit") and "Request" in tree.shown and "Cancel" in tree.shown
    typed = {"param-service": {"value": {"type": "plain_text_input", "value": "cart"}},
             "mode": {"value": {"type": "static_select", "selected_option": None}}}  # fmt: skip
    again = Tree(render_view(view | {"state": {"values": typed}}))  # shown again after errors: as typed
    assert again.find("input", name="param-service", value="cart") and again.find("option", value="", selected="")
    notice = Tree(render_view({"id": "V1", "title": {"type": "plain_text", "text": "Done"}, "blocks": []}))
    assert notice.find("button", type="submit") == [] and notice.find("button", data_close="1")


def test_rich_text_as_a_slack_client_sends_it() -> None:
    rich = {"type": "rich_text", "elements": [
        {"type": "rich_text_section", "elements": [
            {"type": "text", "text": "deploy ", "style": {"bold": True}},
            {"type": "user", "user_id": "U0ALICE"}, {"type": "text", "text": " <b>see</b> "},
            {"type": "link", "url": "https://ci.example/1", "text": "build"},
            {"type": "link", "url": "javascript:alert(1)", "text": "bad"}, {"type": "emoji", "name": "tada"}]},
        {"type": "rich_text_list", "style": "ordered", "elements": [
            {"type": "rich_text_section", "elements": [{"type": "text", "text": "one"}]}]},
        {"type": "rich_text_preformatted", "elements": [{"type": "text", "text": "kubectl get pods"}]},
    ]}  # fmt: skip
    markup = render_message(message({"text": "x", "blocks": [rich]}, user="U0BOB"), USERS, CHANNELS)
    tree = assert_inert(markup)
    assert "<b>deploy </b>" in markup and "@alice" in tree.shown and "<b>see</b>" in tree.shown
    assert [a["href"] for a in tree.find("a")] == ["https://ci.example/1"] and "bad (javascript:alert(1))" in tree.shown
    assert "\U0001f389" in tree.shown and tree.find("ol") and "<pre" in markup
