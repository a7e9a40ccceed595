"""Service configuration from the environment (prefix ``TESORO_``) or a ``.env`` file."""

from __future__ import annotations

import difflib
import importlib
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from app.domain.fx import BUILT_IN, Policy, PolicyConfigError, parse_policies
from app.domain.ids import CONSENT_KEY_PATTERN
from app.domain.interpret import (
    DEFAULT_AVAILABLE_ORDER,
    DEFAULT_CURRENT_FALLBACK_ORDER,
    DEFAULT_CURRENT_ORDER,
)

Scope = Literal["read", "write"]
RateSourceName = Literal["bcra", "bnr", "ecb", "dolarapi"]

# The ISO 20022 / UK Open Banking balance types Finqware reports.
BALANCE_TYPES: tuple[str, ...] = (
    "ClosingAvailable",
    "ClosingBooked",
    "ClosingCleared",
    "Expected",
    "ForwardAvailable",
    "Information",
    "InterimAvailable",
    "InterimBooked",
    "InterimCleared",
    "OpeningAvailable",
    "OpeningBooked",
    "OpeningCleared",
    "PreviouslyClosedBooked",
)


class ConsentSettings(BaseModel):
    """One Finqware consent: a bank connection of the company."""

    key: Annotated[str, Field(min_length=1, max_length=64, pattern=CONSENT_KEY_PATTERN)]
    label: str | None = None
    credentials_id: SecretStr
    access_token: SecretStr
    tenant_user_id: str
    # When the consent ends (90 days after onboarding by default); from 14 days before,
    # answers warn. An offset is required: a consent's end is one instant for everyone.
    expires_at: AwareDatetime | None = None


class ApiKeySettings(BaseModel):
    """A caller key, stored only as the SHA-256 of the key."""

    sha256: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")]
    scopes: list[Scope] = Field(default_factory=lambda: list[Scope](["read"]))

    @field_validator("sha256")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()


class ConfigurationError(Exception):
    """The configuration cannot run the service; the message says what to set."""


def describe_invalid(exc: ValidationError) -> str:
    """One line per invalid setting, named by its variable; input values are never shown."""
    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        head, *rest = error["loc"] or ("settings",)
        where = f"TESORO_{str(head).upper()}" + "".join(f"[{part!r}]" for part in rest)
        lines.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
    return "\n".join(lines)


_NOT_JSON = "not valid JSON (see deploy/tesoro.env.example for its shape)"


def describe_unparsable(exc: Exception) -> str:
    """The variable whose value could not be parsed (JSON expected), never its value."""
    found = re.search(r'field "([a-z_]+)"', str(exc))
    name = f"TESORO_{found.group(1).upper()}" if found else "a TESORO_ variable"
    return f"{name}: {_NOT_JSON}"


class _NotJson:
    """What a JSON setting whose text is not JSON is read as: validation then names it
    along with every other mistake, instead of the first bad JSON stopping the reading."""


_NOT_JSON_VALUE = _NotJson()


class _TolerantJsonEnv(EnvSettingsSource):
    """The environment, a JSON setting that is not JSON read as `_NotJson`."""

    def prepare_field_value(
        self, field_name: str, field: FieldInfo, value: Any, value_is_complex: bool
    ) -> Any:
        try:
            return super().prepare_field_value(field_name, field, value, value_is_complex)
        except ValueError:
            return _NOT_JSON_VALUE


class _TolerantJsonDotEnv(_TolerantJsonEnv, DotEnvSettingsSource):
    """The `.env` file, a JSON setting that is not JSON read as `_NotJson`."""


def module_installed(name: str) -> bool:
    """Whether `name` can be imported (an optional extra is installed)."""
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def unknown_setting_names(
    environ: Mapping[str, str], env_file: Path | None = None
) -> list[tuple[str, str | None]]:
    """The `TESORO_*` names set in `environ` or in `env_file` that tesoro does not read, each
    with the nearest name it does read (None when nothing is near): a misspelt name would
    otherwise be ignored without a word."""
    known = [name.upper() for name in Settings.model_fields]
    names = set(environ)
    if env_file is not None and env_file.is_file():
        names |= set(DotEnvSettingsSource(Settings, env_file=env_file).env_vars)
    found = []
    for name in sorted({name.upper() for name in names if name.upper().startswith("TESORO_")}):
        # Compared without the prefix, which every name shares.
        bare = name.removeprefix("TESORO_")
        if bare not in known:
            nearest = difflib.get_close_matches(bare, known, n=1, cutoff=0.6)
            found.append((name, f"TESORO_{nearest[0]}" if nearest else None))
    return found


def _http_url(value: str) -> str:
    """An http(s) URL with a host: a base URL without its scheme would start and then fail
    every call with a misleading error."""
    parsed = urlsplit(value.strip())
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError("must be an http:// or https:// URL with a host, e.g. https://finsync.ar")
    return value.strip()


HttpUrl = Annotated[str, AfterValidator(_http_url)]


def _origin(value: str) -> str:
    """An origin as browsers send it: scheme, host and port, nothing else."""
    parsed = urlsplit(_http_url(value))
    if parsed.path not in ("", "/") or parsed.query or parsed.fragment:
        raise ValueError("an origin is scheme://host[:port], without a path")
    return f"{parsed.scheme}://{parsed.netloc}"


Origin = Annotated[str, AfterValidator(_origin)]


def _redis_url(value: SecretStr | None) -> SecretStr | None:
    if value is not None:
        parsed = urlsplit(value.get_secret_value().strip())
        if parsed.scheme not in ("redis", "rediss", "unix") or not (parsed.hostname or parsed.path):
            raise ValueError(
                "must be a redis://, rediss:// or unix:// URL, e.g. redis://redis:6379/0"
            )
    return value


def redis_url_redacted(url: SecretStr) -> str:
    """The Redis URL as logs may show it: any user name and password replaced."""
    parsed = urlsplit(url.get_secret_value().strip())
    host = parsed.netloc.rpartition("@")[2]
    shown = parsed._replace(netloc=f"***@{host}" if "@" in parsed.netloc else host, query="")
    return shown.geturl()


def _database_url(value: SecretStr) -> SecretStr:
    scheme = value.get_secret_value().strip().partition(":")[0].lower()
    if scheme.partition("+")[0] not in ("sqlite", "postgresql", "postgres"):
        raise ValueError(
            "must be a sqlite:/// or postgresql:// URL, e.g. sqlite:///tesoro.db or "
            "postgresql://tesoro:<password>@db:5432/tesoro"
        )
    return value


def database_url_shown(url: SecretStr) -> str:
    """The database URL as logs may show it: any password replaced."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url.get_secret_value().strip()).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparsable database URL>"


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            "must be an IANA time zone, e.g. UTC or America/Argentina/Buenos_Aires"
        ) from None
    return value


class Settings(BaseSettings):
    """Every setting of tesoro. Secrets are ``SecretStr`` so they never print."""

    model_config = SettingsConfigDict(
        env_prefix="TESORO_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        hide_input_in_errors=True,
        # A blank variable (as deploy/tesoro.env.example leaves them) is not set: an empty
        # FinSync key must not switch FinSync on.
        env_ignore_empty=True,
    )

    sandbox: bool = False

    finsync_base_url: HttpUrl = "https://finsync.ar"
    finsync_api_key: SecretStr | None = None

    finqware_base_url: HttpUrl = "https://api.finqware.com/v1"
    finqware_client_id: str | None = None
    finqware_client_secret: SecretStr | None = None
    finqware_consents: list[ConsentSettings] = Field(default_factory=list)

    api_keys: dict[str, ApiKeySettings] = Field(default_factory=dict)
    auth_disabled: bool = False

    finsync_ttl_seconds: Annotated[float, Field(gt=0)] = 30
    finqware_ttl_seconds: Annotated[float, Field(gt=0)] = 300
    finqware_accounts_ttl_seconds: Annotated[float, Field(gt=0)] = 3600
    stale_if_error_seconds: Annotated[float, Field(ge=0)] = 86400
    upstream_timeout_seconds: Annotated[float, Field(gt=0)] = 5
    # Reads tried again after a transient failure, and the time all tries of one read get.
    upstream_retry_attempts: Annotated[int, Field(ge=1, le=10)] = 3
    upstream_deadline_seconds: Annotated[float, Field(gt=0)] = 12
    # An aggregated answer leaves by then with what is in hand (stale or unavailable for the
    # connections still fetching, whose fetches go on and fill the cache).
    request_deadline_seconds: Annotated[float, Field(gt=0)] = 8
    min_refresh_interval_seconds: Annotated[float, Field(ge=0)] = 10
    failure_backoff_seconds: Annotated[float, Field(ge=0)] = 15
    # An expired consent or a refused key is asked again no more than this often.
    permanent_failure_backoff_seconds: Annotated[float, Field(ge=0)] = 3600
    # Transient failures in a row that open a connection's circuit, and how long it stays open.
    breaker_failures: Annotated[int, Field(ge=1)] = 5
    breaker_open_seconds: Annotated[float, Field(gt=0)] = 30
    finsync_page_concurrency: Annotated[int, Field(ge=1, le=16)] = 4
    # Bounded work per caller and per process (see README, "Limits").
    caller_max_in_flight: Annotated[
        int,
        Field(
            ge=1,
            description="Requests one caller (one API key; without authentication, one "
            "client address) may have in flight; one more is a 429 with Retry-After. "
            "/healthz, /readyz and /metrics are not counted.",
        ),
    ] = 16
    max_concurrent_builds: Annotated[
        int,
        Field(
            ge=1,
            description="Answers built at the same time in this process (a question not "
            "asked before for this data); the rest wait in a queue.",
        ),
    ] = 2
    max_queued_builds: Annotated[
        int,
        Field(
            ge=0,
            description="Builds that may wait for a free place; past it a request that "
            "needs a new build is a 503 with Retry-After.",
        ),
    ] = 16
    upstream_http2: bool = False

    current_balance_types: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_CURRENT_ORDER)
    )
    current_fallback_balance_types: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_CURRENT_FALLBACK_ORDER)
    )
    available_balance_types: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_AVAILABLE_ORDER)
    )

    # The spec's `servers` entry; unset, it follows the address served (see `tesoro serve`).
    public_base_url: HttpUrl | None = None
    # The treasury console at /console/ (and / leading to it); off, both are 404s.
    console_enabled: bool = True
    # Browser origins allowed to call tesoro (JSON list, e.g. ["https://app.example.com"]).
    cors_origins: list[Origin] = Field(default_factory=list)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # JSON lines (for collectors) or human-readable lines (for a terminal).
    log_format: Literal["json", "console"] = "json"
    # A span per upstream call, exported by OTLP, when the `otel` extra is installed; also on
    # when an OTEL_EXPORTER_OTLP_*ENDPOINT variable is set (OTEL_SDK_DISABLED=true wins).
    tracing_enabled: bool = False
    # The shared tier (redis://[:password@]host:port/db, rediss:// for TLS): replicas share one
    # cache, one set of idempotency records and one create lock. A secret (it may hold a
    # password): shown only as redis_url_redacted(). Each Redis call gets this long.
    redis_url: Annotated[SecretStr | None, AfterValidator(_redis_url)] = None
    redis_timeout_seconds: Annotated[float, Field(gt=0, le=10)] = 0.5

    # The rate sources (no credentials: public data), the ones that are on, the policies.
    fx_bcra_base_url: HttpUrl = "https://api.bcra.gob.ar"
    fx_bnr_base_url: HttpUrl = "https://curs.bnr.ro"
    fx_ecb_base_url: HttpUrl = "https://data-api.ecb.europa.eu"
    fx_dolarapi_base_url: HttpUrl = "https://dolarapi.com"
    fx_sources: list[RateSourceName] = Field(
        default_factory=lambda: list[RateSourceName](["bcra", "bnr", "ecb", "dolarapi"])
    )
    # JSON object, name -> policy (see app.domain.fx.parse_policies and the README).
    fx_policies: dict[str, Any] = Field(default_factory=dict)
    # After fx_policies: it may name one of them.
    fx_default_policy: str = "official"
    # A fixing older than this before the date asked is no rate at all.
    fx_max_age_days: Annotated[int, Field(ge=0, le=366)] = 7
    # How long the latest fixing of a series stays fresh (past fixings never change).
    fx_ttl_seconds: Annotated[float, Field(gt=0)] = 900
    # GET /events: streams one process holds (one more is a 503), how often an idle stream
    # gets a comment line (proxies close silent connections), and how many events may wait
    # for one stream before it is reset as too slow.
    events_max_subscribers: Annotated[int, Field(ge=1)] = 1000
    events_heartbeat_seconds: Annotated[float, Field(gt=0, le=3600)] = 15.0
    events_queue_size: Annotated[int, Field(ge=1, le=100_000)] = 256
    # History: what tesoro observed, kept in this database (a SQLAlchemy URL: sqlite:///file
    # or postgresql://user:password@host/db). A secret (it may hold a password): shown only
    # as database_url_shown().
    database_url: Annotated[SecretStr, AfterValidator(_database_url)] = SecretStr(
        "sqlite:///tesoro.db"
    )
    # `tesoro serve` applies the store's migrations at start (false: `tesoro db upgrade` does).
    database_migrate: bool = True
    history_enabled: bool = True
    history_retention_days: Annotated[int, Field(ge=1)] = 400
    # Observations waiting to be written; past this, the oldest are dropped (and the gap kept).
    history_queue_size: Annotated[int, Field(ge=1)] = 1000
    observe_finsync_seconds: Annotated[float, Field(gt=0)] = 900
    observe_finqware_seconds: Annotated[float, Field(gt=0)] = 21600
    # The sandbox only: days of plausible past history written into its empty store at start
    # (0: none), and how often its simulators' balances move while running (0: never).
    sandbox_history_days: Annotated[int, Field(ge=0, le=400)] = 90
    sandbox_moves_seconds: Annotated[float, Field(ge=0)] = 20.0
    # The zone in which history's days and weeks end.
    timezone: Annotated[str, AfterValidator(_timezone)] = "UTC"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The same sources, reading a JSON setting that is not JSON as a value validation
        # refuses (below): every mistake is then reported at once, not just the first.
        return (
            init_settings,
            _TolerantJsonEnv(settings_cls),
            _TolerantJsonDotEnv(
                settings_cls,
                env_file=getattr(dotenv_settings, "env_file", None),
                env_file_encoding=getattr(dotenv_settings, "env_file_encoding", None),
            ),
            file_secret_settings,
        )

    @field_validator("*", mode="before")
    @classmethod
    def _json_read(cls, value: object) -> object:
        if value is _NOT_JSON_VALUE:
            raise PydanticCustomError("json_invalid", _NOT_JSON)
        return value

    @field_validator(
        "current_balance_types",
        "current_fallback_balance_types",
        "available_balance_types",
        mode="before",
    )
    @classmethod
    def _comma_list(cls, value: object) -> object:
        # Orders read better as "InterimBooked,ClosingBooked" than as JSON in an env var.
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator(
        "current_balance_types",
        "current_fallback_balance_types",
        "available_balance_types",
    )
    @classmethod
    def _known_balance_types(cls, value: list[str]) -> list[str]:
        # A misspelt type would silently never match: refused at start-up instead.
        unknown = [name for name in value if name not in BALANCE_TYPES]
        if unknown:
            raise ValueError(
                f"unknown balance type {', '.join(unknown)}; known: {', '.join(BALANCE_TYPES)}"
            )
        return value

    @field_validator("finqware_consents")
    @classmethod
    def _unique_consent_keys(cls, consents: list[ConsentSettings]) -> list[ConsentSettings]:
        keys = [consent.key for consent in consents]
        repeated = sorted({key for key in keys if keys.count(key) > 1})
        if repeated:
            raise ValueError(
                f"every consent needs a distinct key; given more than once: {', '.join(repeated)}"
            )
        return consents

    @field_validator("fx_sources")
    @classmethod
    def _unique_sources(cls, sources: list[str]) -> list[str]:
        repeated = sorted({name for name in sources if sources.count(name) > 1})
        if repeated:
            raise ValueError(f"each rate source once; given more than once: {', '.join(repeated)}")
        return sources

    @field_validator("fx_policies")
    @classmethod
    def _valid_policies(cls, policies: dict[str, Any]) -> dict[str, Any]:
        try:
            parse_policies(policies)
        except PolicyConfigError as exc:
            raise ValueError(str(exc)) from None
        return policies

    @field_validator("fx_default_policy")
    @classmethod
    def _known_default_policy(cls, name: str, info: ValidationInfo) -> str:
        configured = info.data.get("fx_policies")
        if configured is None:
            return name  # the policies are wrong, and said so: this cannot be checked
        known = [*BUILT_IN, *configured]
        if name not in known:
            raise ValueError(f"unknown policy {name!r}; known: {', '.join(known)}")
        return name

    @property
    def fx_policy_table(self) -> dict[str, Policy]:
        """Every policy by name: the built-in ones and TESORO_FX_POLICIES."""
        return {**BUILT_IN, **parse_policies(self.fx_policies)}

    @property
    def finsync_enabled(self) -> bool:
        return self.finsync_api_key is not None

    @property
    def finqware_enabled(self) -> bool:
        return (
            self.finqware_client_id is not None
            and self.finqware_client_secret is not None
            and bool(self.finqware_consents)
        )

    @property
    def auth_required(self) -> bool:
        return not self.auth_disabled and bool(self.api_keys or not self.sandbox)

    def check_runnable(self, installed: Callable[[str], bool] = module_installed) -> None:
        """Refuse to start a configuration that cannot serve, saying what to set.
        `installed(module)` says whether an optional extra can be imported."""
        if self.redis_url is not None and not installed("redis"):
            raise ConfigurationError(
                "TESORO_REDIS_URL is set but the redis extra is not installed "
                "(pip install 'tesoro[redis]'), or unset TESORO_REDIS_URL"
            )
        if self.sandbox:
            return
        finqware = {
            "TESORO_FINQWARE_CLIENT_ID": self.finqware_client_id is not None,
            "TESORO_FINQWARE_CLIENT_SECRET": self.finqware_client_secret is not None,
            "TESORO_FINQWARE_CONSENTS": bool(self.finqware_consents),
        }
        if any(finqware.values()) and not all(finqware.values()):
            given = " and ".join(name for name, is_set in finqware.items() if is_set)
            missing = " and ".join(name for name, is_set in finqware.items() if not is_set)
            raise ConfigurationError(
                f"Finqware is partly configured: {given} set, {missing} missing; "
                "set all three, or none to run without Finqware"
            )
        if not self.finsync_enabled and not self.finqware_enabled:
            raise ConfigurationError(
                "no upstream is configured: set TESORO_FINSYNC_API_KEY, or "
                "TESORO_FINQWARE_CLIENT_ID, TESORO_FINQWARE_CLIENT_SECRET and "
                "TESORO_FINQWARE_CONSENTS (or TESORO_SANDBOX=true to use the simulators)"
            )
        if not self.api_keys and not self.auth_disabled:
            raise ConfigurationError(
                "no caller API key is configured: set TESORO_API_KEYS, or "
                "TESORO_AUTH_DISABLED=true to run without authentication"
            )


def configured_connections(settings: Settings) -> list[dict[str, str | None]]:
    """The connections the settings configure, by key and label only (for the start-up log)."""
    found: list[dict[str, str | None]] = []
    if settings.finsync_enabled:
        found.append({"key": "finsync", "label": None})
    if settings.finqware_enabled:
        found.extend(
            {"key": f"finqware:{consent.key}", "label": consent.label}
            for consent in settings.finqware_consents
        )
    return found


def secret_values(settings: Settings) -> list[str]:
    """Every secret the settings hold (masked in the logs)."""
    values = [
        secret.get_secret_value()
        for secret in (settings.finsync_api_key, settings.finqware_client_secret)
        if secret is not None
    ]
    if settings.redis_url is not None:
        # The password in the Redis URL, and the URL itself.
        password = urlsplit(settings.redis_url.get_secret_value()).password
        values += [settings.redis_url.get_secret_value(), *([password] if password else [])]
    database = settings.database_url.get_secret_value()
    try:
        from sqlalchemy.engine import make_url

        password = make_url(database.strip()).password
    except Exception:  # an unparsable URL is refused at start; the whole value is hidden
        password = None
    if password:
        values += [database, str(password)]
    for consent in settings.finqware_consents:
        values += [
            consent.access_token.get_secret_value(),
            consent.credentials_id.get_secret_value(),
        ]
    return values
