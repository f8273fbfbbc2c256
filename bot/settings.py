"""The one Settings object: environment (prefix LIQRADAR_) and .env, built once in main()."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from storage.urls import sqlite_file


class Settings(BaseSettings):
    """Every knob of the service; `.env.example` documents each one."""

    model_config = SettingsConfigDict(env_prefix="LIQRADAR_", env_file=".env", extra="ignore")

    # storage
    database_url: str = "sqlite+aiosqlite:///./liqradar.db"

    # market data
    symbols: list[str] = Field(default_factory=lambda: ["BTC", "ETH"])
    venues: list[str] = Field(default_factory=lambda: ["binance", "bybit", "okx"])
    binance_api_url: str = "https://fapi.binance.com"
    bybit_api_url: str = "https://api.bybit.com"
    okx_api_url: str = "https://www.okx.com"
    binance_ws_url: str = "wss://fstream.binance.com/market/ws/!forceOrder@arr"
    bybit_ws_url: str = "wss://stream.bybit.com/v5/public/linear"
    okx_ws_url: str = "wss://ws.okx.com:8443/ws/v5/public"
    http_timeout_s: float = 10.0
    http_retries: int = 3
    refresh_seconds: int = 60
    history_days: int = 7
    wide_interval: str = "15m"
    wide_history_days: int = 38
    stale_after_s: int = 600

    # chat platforms
    telegram_token: SecretStr | None = None
    telegram_api_url: str = "https://api.telegram.org/bot"
    telegram_file_url: str = "https://api.telegram.org/file/bot"
    telegram_webhook_url: str | None = None
    telegram_webhook_listen: str = "0.0.0.0"
    telegram_webhook_port: int = 8443
    discord_token: SecretStr | None = None
    discord_api_url: str = "https://discord.com/api/v10"
    discord_gateway_url: str | None = None

    # alerts and delivery
    default_sensitivity: str = "balanced"
    map_cooldown_s: int = 20
    delivery_max_attempts: int = 8
    delivery_journal: str | None = None

    # web
    web_host: str = "127.0.0.1"
    web_port: int = 8080
    public_url: str | None = None

    # logging
    log_level: str = "INFO"
    log_json: bool = False

    # service (bot/app.py)
    discord_sync_guild_id: int | None = None
    discord_guild_ready_timeout_s: float = 2.0
    reconcile_seconds: float = 10.0
    delivery_timeout_s: float = 60.0
    shutdown_timeout_s: float = 10.0
    replay_warmup_minutes: int = 360
    replay_anchor: float | None = None
    replay_min_refresh_s: float = 1.0
    replay_loops: int = 1
    standby_retry_s: float = 5.0

    def journal_path(self) -> Path | None:
        """The delivery journal's file: as set ("" = none); by default beside a SQLite file
        (none for an in-memory database), else liqradar-sends.jsonl in the working directory."""
        if self.delivery_journal is not None:
            return Path(self.delivery_journal) if self.delivery_journal else None
        db = sqlite_file(self.database_url)
        if db is not None:
            return Path(f"{db}-sends.jsonl")
        if make_url(self.database_url).get_backend_name() == "sqlite":
            return None  # in memory
        return Path("liqradar-sends.jsonl")
