"""The services one app instance shares with its request handlers: settings, database, privacy, notifier."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from server.db import Database
from server.notify import OrderNotifier
from server.privacy import Privacy
from server.settings import ServerSettings

if TYPE_CHECKING:
    from server.metrics import ServerMetrics


@dataclass
class Services:
    """Everything a request handler may use; built once by create_app."""

    settings: ServerSettings
    db: Database
    privacy: Privacy
    notifier: OrderNotifier
    metrics: ServerMetrics

    @property
    def secret(self) -> str:
        return self.settings.secret_key.get_secret_value()
