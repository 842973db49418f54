"""User-agent classes for the click log, and the link-preview bots that are never visitors.

When a link is pasted into a chat, the app's server fetches it to draw a preview: those
fetches (and search-engine crawlers) must be recorded as bots, or every shared link would
count visitors nobody sent. The list is deliberately short and specific: general crawler
libraries match thousands of patterns, and this check runs on every invite click, the
hottest path of the product. A bare "bot" substring is not enough on its own (phone
brands such as Cubot carry it), so patterns are whole words or known product names.
"""

from __future__ import annotations

import functools
import re

# Link-preview fetchers of chat and social apps, then search engines, then HTTP tools.
BOT_PATTERNS = (
    # Chat and social link previews.
    r"whatsapp",
    r"facebookexternalhit",
    r"facebookcatalog",
    r"facebot",
    r"meta-externalagent",
    r"twitterbot",
    r"slackbot",
    r"slack-imgproxy",
    r"telegrambot",
    r"linkedinbot",
    r"discordbot",
    r"skypeuripreview",
    r"pinterestbot",
    r"redditbot",
    r"snap-url-preview|snappreviewbot",
    r"line-poker|linespider",
    r"kakaotalk-scrap",
    r"viber",
    r"vkshare",
    r"embedly|iframely",
    r"mastodon/",
    r"bitlybot",
    # WeChat's and Weibo's crawlers (not their in-app browsers, which are people).
    r"wechat ?(?:bot|spider|crawler)|wechatbot|wxbot",
    r"weibo ?(?:bot|spider)|weibospider|sinaweibobot",
    # Search engines and their preview fetchers.
    r"googlebot|google-inspectiontool|googleother|adsbot-google|mediapartners-google",
    r"google-pagerenderer|storebot-google|feedfetcher-google",
    r"bingbot|bingpreview|msnbot|adidxbot",
    r"baiduspider|yandex(?:bot|images|mobilebot)|duckduckbot|yahoo! slurp",
    r"sogou (?:web|inst|pic) spider|sogou spider|360spider|haosouspider|yisouspider",
    r"bytespider|petalbot|applebot|semrushbot|ahrefsbot|mj12bot|dotbot",
    # Tools, not browsers.
    r"curl/|wget/|python-requests|python-urllib|aiohttp|httpx|go-http-client",
    r"okhttp/|java/|libwww-perl|headlesschrome",
    # Anything else that says what it is.
    r"\bbot\b|\bcrawler\b|\bspider\b|\bpreview\b",
)
BOT_RE = re.compile("|".join(BOT_PATTERNS), re.IGNORECASE)
_TABLET_RE = re.compile(r"ipad|tablet|kindle|silk/|playbook|\bsm-t\d", re.IGNORECASE)
_MOBILE_RE = re.compile(
    r"mobi|iphone|ipod|android|windows phone|micromessenger|opera mini", re.IGNORECASE
)
_DESKTOP_RE = re.compile(r"windows nt|macintosh|x11|\bcros\b|linux", re.IGNORECASE)


def is_bot(user_agent: str) -> bool:
    """Whether `user_agent` is a link-preview bot, a crawler or a tool (or missing)."""
    return not user_agent.strip() or bool(BOT_RE.search(user_agent))


def ua_class(user_agent: str) -> str:
    """One of the Click.UserAgentClass values: mobile, tablet, desktop, bot or other."""
    # Most clicks come from a few thousand distinct user agents: remembered, the regular
    # expressions run once for each (unless it is too long to be worth keeping).
    if len(user_agent) > UA_CACHED_LENGTH:
        return _ua_class(user_agent)
    return _ua_class_cached(user_agent)


UA_CACHED_LENGTH = 512


def _ua_class(user_agent: str) -> str:
    if is_bot(user_agent):
        return "bot"
    # Android tablets leave "Mobile" out of their user agent; phones put it in.
    if _TABLET_RE.search(user_agent) or (
        "android" in user_agent.lower() and "mobile" not in user_agent.lower()
    ):
        return "tablet"
    if _MOBILE_RE.search(user_agent):
        return "mobile"
    if _DESKTOP_RE.search(user_agent):
        return "desktop"
    return "other"


_ua_class_cached = functools.lru_cache(maxsize=4096)(_ua_class)
