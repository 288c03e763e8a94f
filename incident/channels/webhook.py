"""Webhook addresses (``json://``, ``form://`` and their secure forms): one keep-alive aiohttp
session sending the payload apprise would send. apprise parses the URL (its plugin's own
parser, cached per address), so its options, headers and payload extras mean the same."""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

import aiohttp
from apprise.plugins.custom_form import NotifyForm
from apprise.plugins.custom_json import NotifyJSON

from incident.channels.messages import (
    Message,
    Permanent,
    classify_status,
    fill,
    retry_after_seconds,
)

SCHEMES = ("json", "jsons", "form", "forms")
PARSED_KEPT = 5000


class WebhookChannel:
    def __init__(self, *, in_flight: int, attempt_timeout: float) -> None:
        self._in_flight = in_flight
        self._timeout = aiohttp.ClientTimeout(total=attempt_timeout)
        self._apprise: OrderedDict[str, Any] = OrderedDict()
        self._apprise_lock = threading.Lock()
        self._http: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    def _parsed(self, address: str) -> Any:
        with self._apprise_lock:
            found = self._apprise.get(address)
            if found is None:
                # The plugin's own parser and constructor (about 70 us) rather than
                # Apprise.instantiate (about 430 us): same options, same payload.
                plugin = NotifyJSON if address.lower().startswith("json") else NotifyForm
                try:
                    parsed = plugin.parse_url(address)  # type: ignore[no-untyped-call]
                    found = plugin(**parsed) if parsed else None
                except TypeError:
                    found = None
                if found is None:
                    raise Permanent("not a valid apprise URL")
                self._apprise[address] = found
                if len(self._apprise) > PARSED_KEPT:
                    self._apprise.popitem(last=False)
            else:
                self._apprise.move_to_end(address)
            return found

    async def attempt(self, message: Message) -> Exception | None:
        values = message.values
        plugin = self._parsed(message.address)
        if values and any(
            "{" in str(part or "") for part in (plugin.host, plugin.user, plugin.password)
        ):  # a placeholder where no field is filled per message: parse the filled address
            plugin, values = self._parsed(message.resolved_address()), None
        if self._http is None:
            connector = aiohttp.TCPConnector(limit=self._in_flight, limit_per_host=0)
            self._http = aiohttp.ClientSession(connector=connector, trust_env=False)
        url = f"{'https' if plugin.secure else 'http'}://{plugin.host}"
        if isinstance(plugin.port, int):
            url += f":{plugin.port}"
        url += fill(plugin.fullpath, values, quoted=True)
        headers = {
            "User-Agent": plugin.app_id,
            **{k: fill(v, values) for k, v in plugin.headers.items()},
            "Idempotency-Key": message.idempotency_key,
        }
        params = {k: fill(v, values) for k, v in plugin.params.items()} or None
        payload: dict[str, Any] = {
            "version": "1.0",
            "title": message.subject,
            "message": message.body,
            "type": "info",
        }
        if message.address.split("://", 1)[0].lower() in ("json", "jsons"):
            payload = {
                "version": plugin.json_version,
                "title": message.subject,
                "message": message.body,
                "attachments": [],
                "type": "info",
            }
        for key, template in plugin.payload_extras.items():
            value = fill(template, values) if isinstance(template, str) else template
            if key in payload:
                if value:
                    payload[value] = payload.pop(key)
                else:
                    del payload[key]
            else:
                payload[key] = value
        auth = aiohttp.BasicAuth(plugin.user, plugin.password or "") if plugin.user else None
        method = str(getattr(plugin, "method", "POST")).upper()
        kwargs: dict[str, Any] = {
            "headers": headers,
            "params": params,
            "auth": auth,
            "timeout": self._timeout,
            "allow_redirects": bool(getattr(plugin, "redirects", True)),
        }
        if plugin.secure and not getattr(plugin, "verify_certificate", True):
            kwargs["ssl"] = False
        if isinstance(plugin, NotifyJSON):
            kwargs["json"] = payload
        else:
            kwargs["data"] = {k: str(v) for k, v in payload.items()}
        assert self._http is not None
        async with self._http.request(method, url, **kwargs) as response:
            await response.read()
            after = retry_after_seconds(response.headers.get("Retry-After"), datetime.now(UTC))
            return classify_status(response.status, after)
