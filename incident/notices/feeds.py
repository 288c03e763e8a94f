"""Atom feeds (via feedgen): the notices feed, and the index of current CAP messages.

Entries are one per notice, showing the version the public sees now (an update replaces the
text of its entry; the all-clear marks it closed). Text is plain and escaped by the XML
writer; both languages are in every entry.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from feedgen.feed import FeedGenerator

from incident.models import Notice
from incident.notices import cap
from incident.notices.reading import public_version
from incident.notices.texts import Text

ATOM_MEDIA_TYPE = "application/atom+xml"
ATOM = "{http://www.w3.org/2005/Atom}"
STATUS_LABELS = {
    "current": ("", ""),
    "closed": ("【已解除】", "[Closed] "),
    "withdrawn": ("【已撤回】", "[Withdrawn] "),
}


class EntryLinks:
    """Entry links with their ``rel`` and ``type``, written as a feedgen entry extension:
    feedgen 1.0 writes entry links with ``href`` only (it drops rel and type)."""

    def __init__(self) -> None:
        self.links: list[dict[str, str]] = []

    def add(self, href: str, rel: str, media_type: str) -> None:
        self.links.append({"href": href, "rel": rel, "type": media_type})

    def extend_ns(self) -> dict[str, str]:
        return {}

    def extend_rss(self, item: Any) -> Any:
        return item

    def extend_atom(self, entry: Any) -> Any:
        for link in self.links:
            entry.append(entry.makeelement(f"{ATOM}link", link))
        return entry


def _links(entry: Any) -> EntryLinks:
    entry.register_extension("links", EntryLinks, atom=True, rss=False)
    links: EntryLinks = entry.links
    return links


def _texts(notice: Notice) -> dict[str, Text]:
    version = public_version(notice)
    return {lang: Text.from_json(value) for lang, value in version.texts.items()}


def entry_title(notice: Notice) -> str:
    """``zh headline / en headline``, prefixed with the closed or withdrawn mark."""
    texts = _texts(notice)
    zh_mark, en_mark = STATUS_LABELS.get(notice.status, ("", ""))
    parts = [zh_mark + texts["zh"].headline]
    if "en" in texts:
        parts.append(en_mark + texts["en"].headline)
    return " / ".join(parts)


def _feed(feed_id: str, title: str, self_url: str, public_url: str, now: datetime) -> FeedGenerator:
    generator = FeedGenerator()
    generator.id(feed_id)
    generator.title(title)
    generator.language("zh-CN")
    generator.author({"name": "铁路客服中心 Railway service centre"})
    generator.link(href=self_url, rel="self")
    generator.link(href=f"{public_url}/notices", rel="alternate", type="text/html")
    generator.updated(now)
    return generator


def atom(notices: Iterable[Notice], *, public_url: str, now: datetime) -> bytes:
    """The Atom feed of published notices, newest first."""
    items = list(notices)
    updated = max((n.last_published_at for n in items if n.last_published_at), default=now)
    generator = _feed(
        f"{public_url}/notices.atom",
        "公告 Notices",
        f"{public_url}/notices.atom",
        public_url,
        updated,
    )
    for notice in items:
        version = public_version(notice)
        texts = _texts(notice)
        entry = generator.add_entry(order="append")
        entry.id(f"{public_url}/notices/{notice.id}")
        entry.title(entry_title(notice))
        links = _links(entry)
        links.add(f"{public_url}/notices/{notice.id}", "alternate", "text/html")
        links.add(f"{public_url}/notices/{notice.id}.cap", "related", cap.MEDIA_TYPE)
        assert notice.first_published_at is not None and version.published_at is not None
        entry.published(notice.first_published_at)
        entry.updated(version.published_at)
        entry.category(term=notice.status)
        entry.category(term=f"level-{version.level}")
        body = "\n\n".join(t.plain() for t in texts.values())
        entry.content(body, type="text")
    return bytes(generator.atom_str(pretty=False))


def cap_index(notices: Iterable[Notice], *, public_url: str, sender: str, now: datetime) -> bytes:
    """An Atom index of the current CAP messages (what alerting hubs poll)."""
    items = list(notices)
    updated = max((n.last_published_at for n in items if n.last_published_at), default=now)
    generator = _feed(
        f"{public_url}/notices.cap",
        "CAP 1.2 公告索引 CAP index of notices",
        f"{public_url}/notices.cap",
        public_url,
        updated,
    )
    for notice in items:
        version = public_version(notice)
        assert version.published_at is not None
        texts = _texts(notice)
        entry = generator.add_entry(order="append")
        entry.id(f"{public_url}/notices/{notice.id}.cap#{cap.identifier(notice, version)}")
        entry.title(entry_title(notice))
        _links(entry).add(f"{public_url}/notices/{notice.id}.cap", "alternate", cap.MEDIA_TYPE)
        entry.updated(version.published_at)
        entry.published(version.published_at)
        entry.author({"name": sender})
        # feedgen wants content or its own alternate link (see EntryLinks): the headlines.
        entry.content("\n".join(t.headline for t in texts.values()), type="text")
        entry.category(term=cap.MSG_TYPES[version.kind])
    return bytes(generator.atom_str(pretty=False))
