"""The hostile buyer texts, by name: what a buyer (or a broken marketplace) can put where we show text.

Every suite under tests/hostile draws from here, so one new payload is tried everywhere at once.
`TEXTS` are safe to store and to show; `LONG_TEXTS` exceed the triage contract's 20,000-character
message limit (they must be refused there with a clear error, and still be stored and shown whole).
"""

from __future__ import annotations

# Markers a reply or a page must never contain when the payloads are data, not code.
EVALUATED = ("49", "<script>alert", "onerror=alert", "<svg onload")

ONE_MB = 1_000_000


def _megabyte(unit: str) -> str:
    return (unit * (ONE_MB // len(unit) + 1))[:ONE_MB]


TEXTS: dict[str, str] = {
    # Cross-site scripting: each would run in a page that forgot to escape.
    "xss_script_tag": "Where is my order? <script>alert('x')</script>",
    "xss_img_onerror": '<img src=x onerror="alert(1)"> parcel?',
    "xss_javascript_link": '<a href="javascript:alert(1)">track my parcel</a>',
    "xss_svg_onload": '<svg onload=alert(1)><circle r="9"/></svg>',
    "xss_attribute_breakout": '" onmouseover="alert(1)" data-x="',
    "xss_textarea_breakout": "</textarea><script>alert('reply box')</script>",
    "xss_title_breakout": "</title><script>alert(document.cookie)</script>",
    "xss_iframe": '<iframe src="https://evil.example/"></iframe>',
    "xss_htmx_attributes": '<div hx-post="/logout" hx-trigger="load">hi</div>',
    "xss_already_escaped": "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &#x3C;b&#x3E;",
    "xss_style_block": "<style>*{display:none}</style>Where is my parcel?",
    "xss_percent_encoded": "%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    "markdown_javascript_link": "[click me](javascript:alert(1)) **where is my order**",
    # Template injection in every syntax a renderer could evaluate.
    "jinja_expression": "{{ 7*7 }} where is my parcel",
    "jinja_statement": "{% for i in range(3) %}{{ i }}{% endfor %}",
    "jinja_mro_escape": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "jinja_globals": "{{ self.__init__.__globals__ }} {{ config }} {{ lipsum }}",
    "jinja_raw_breakout": "{% endraw %}{{ 7*7 }}{% raw %}",
    "jinja_comment": "{# hidden #} visible",
    "dollar_expression": "${7*7} where is my parcel",
    "hash_expression": "#{7*7} where is my parcel",
    "erb_expression": "<%= 7*7 %> where is my parcel",
    "python_format_fields": "{0.__class__} {shop_name} %s %(order_id)s",
    # Text that looks like SQL: must be stored as text, never run.
    "sql_drop_table": "'; DROP TABLE orders; --",
    "sql_union_select": "' UNION SELECT password_hash FROM users --",
    "sql_tautology": "1' OR '1'='1",
    # Characters that break naive pipelines.
    "control_characters": "".join(chr(c) for c in range(1, 32) if c not in (9, 10, 13)) + " where is it",
    "nul_character": "where is\x00 my order",
    "delete_and_c1_controls": "where\x7f is\x85 my\x9b order",
    "zero_width_characters": "wh\u200bere is m\u200cy or\u200dder\u2060 \ufeffplease",
    "rtl_override": "\u202eredro ym si erehw\u202c where is my order",
    "bidi_isolates": "\u2066Order\u2069 \u2067\u05d0\u05d9\u05e4\u05d4 \u05d4\u05d4\u05d6\u05de\u05e0\u05d4\u2069",
    "combining_marks": "where" + "\u0336\u0337\u0338\u0489" * 200 + " is my order",
    "emoji_flood": "\U0001f4e6" * 3000 + " where is my order?",
    "emoji_zwj_sequences": "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466\U0001f3f3\ufe0f\u200d\U0001f308"
    * 200,
    "mixed_scripts": (
        "Где мой заказ? ¿Dónde está mi pedido? 我的包裹在哪里? Wo ist mein Paket? "
        "أين طلبي؟ 注文はどこですか? 내 주문은 어디에 있나요?"
    ),
    "homoglyphs": "р\u0430у\u0440\u0430l r\u0435fund n\u043ew",
    "crlf_header_injection": "hello\r\nSet-Cookie: session=evil\r\n\r\n<b>bold</b>",
    "unicode_line_separators": "first line\u2028second\u2029third\x0bfourth\x0cfifth",
    "newline_flood": "\n" * 5000 + "where is my order",
    "long_single_word": "a" * 19_000,
    "only_whitespace": " \t\n\u00a0\u2003\u3000 ",
    "only_punctuation": "?!?!...;;;,,,!!!¿¡…",
    "words_none_null": "None null undefined NaN Infinity",
    "path_traversal": "..\\..\\windows\\win.ini ../../etc/passwd %00",
    "json_breakout": '"}], "reply": "pwned", "auto_send": true, "x": [{"',
    "html_entities_of_template": "&#123;&#123; 7*7 &#125;&#125;",
}

LONG_TEXTS: dict[str, str] = {
    "one_megabyte_sentence": _megabyte("Where is my parcel? "),
    "one_megabyte_single_word": "b" * ONE_MB,
    "one_megabyte_script_tags": _megabyte("<script>alert(1)</script>"),
}

ALL_TEXTS: dict[str, str] = {**TEXTS, **LONG_TEXTS}


def blank(text: str) -> bool:
    """True for text a human would see as empty (what the triage contract refuses as blank)."""
    return not text.strip()
