"""Seeded sandbox data: Andes Trading S.A.'s FinSync clients and Finqware bank consents.

Everything here is hand-written and fixed, so every run and every test sees the same
figures. The credentials are public fake values, meant to be printed and copied.

Timestamps are written as of `SEEDED_AS_OF`; a simulator app serves them moved forward by
`seed_shift()` (whole hours, so the newest is at most about an hour old), so that `as_of`
looks current whenever the sandbox runs. Amounts never move.

Money is kept exactly as each upstream writes it on the wire: FinSync balances as the
literal text of a JSON number (float noise included where a float-summing upstream would
produce it, e.g. ``0.30000000000000004``), Finqware amounts as decimal strings.
"""

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

SEEDED_AS_OF = datetime(2026, 11, 20, 19, 0, tzinfo=UTC)
"""The moment the seeded data is written as of (its newest timestamp is just before)."""


NO_SHIFT = timedelta(0)


def seed_shift(now: datetime | None = None) -> timedelta:
    """How far the seeded timestamps move to look current: whole hours from `SEEDED_AS_OF`
    to `now` (the same for every app built within the same hour)."""
    elapsed = (datetime.now(UTC) if now is None else now) - SEEDED_AS_OF
    return timedelta(hours=elapsed // timedelta(hours=1))


def shift_timestamp(text: str, shift: timedelta) -> str:
    """An ISO 8601 timestamp moved by `shift`, written in the same style (``Z`` or naive,
    with or without microseconds)."""
    if not shift:
        return text
    zulu = text.endswith("Z")
    moved = datetime.fromisoformat(text.removesuffix("Z")) + shift
    written = moved.isoformat(timespec="microseconds" if "." in text else "seconds")
    return written + "Z" if zulu else written


def shift_date(text: str, shift: timedelta) -> str:
    """An ISO date moved with the timestamps (its midnight moved by `shift`)."""
    if not shift:
        return text
    return (datetime.combine(date.fromisoformat(text), time()) + shift).date().isoformat()


SANDBOX_CALLER_KEY: str = "sandbox-caller-key-0f4e9c2d"
"""A caller key for tesoro pointed at the simulators (`tesoro sandbox --env-file`): a public
fake like every credential here, never to be configured anywhere else."""

# --------------------------------------------------------------------------- FinSync

FINSYNC_API_KEY: str = "sandbox-finsync-key"
"""The one valid ``x-api-key``; it belongs to company 7 (Andes Trading S.A.)."""

FINSYNC_COMPANY_ID: int = 7
"""The company the sandbox key sees."""

FINSYNC_OTHER_COMPANY_ID: int = 12
"""Another company whose client shares the id space: the sandbox key must get a 404 for it."""

FINSYNC_INTERNAL: int = 0
FINSYNC_EXTERNAL: int = 1


@dataclass(frozen=True)
class FinsyncAccount:
    """One FinSync account of a client, usually one per currency."""

    id: int
    name: str
    currency_name: str
    balance: str
    """The balance as the literal JSON number FinSync writes (never rounded, never a float)."""
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class FinsyncClient:
    """One FinSync client (type 0 internal, type 1 external) with its accounts."""

    id: int
    name: str
    description: str | None
    company_id: int
    type: int
    created_at: str
    updated_at: str
    company_client_id: int
    """Per-company sequence number; FinSync shows it only in the answer to a create."""
    accounts: tuple[FinsyncAccount, ...]


def _acc(
    id: int,
    currency: str,
    balance: str,
    *,
    name: str | None = None,
    created_at: str = "2024-03-01T12:00:00Z",
    updated_at: str = "2026-11-20T18:45:10Z",
) -> FinsyncAccount:
    return FinsyncAccount(
        id=id,
        name=currency if name is None else name,
        currency_name=currency,
        balance=balance,
        created_at=created_at,
        updated_at=updated_at,
    )


def _client(
    id: int,
    type: int,
    name: str,
    description: str | None,
    accounts: tuple[FinsyncAccount, ...],
    *,
    created_at: str,
    updated_at: str = "2026-11-20T18:45:10Z",
    company_id: int = FINSYNC_COMPANY_ID,
    company_client_id: int,
) -> FinsyncClient:
    return FinsyncClient(
        id=id,
        name=name,
        description=description,
        company_id=company_id,
        type=type,
        created_at=created_at,
        updated_at=updated_at,
        company_client_id=company_client_id,
        accounts=accounts,
    )


_I, _E = FINSYNC_INTERNAL, FINSYNC_EXTERNAL

# Ids leave gaps on purpose: other companies' clients live in the same id space.
FINSYNC_CLIENTS: tuple[FinsyncClient, ...] = (
    # Internal: cajas, banks, wallets.
    _client(101, _I, "Caja Pesos", "Efectivo en oficina central",
            (_acc(901, "ARS", "1520.5"),),
            created_at="2023-11-07T05:31:56Z", company_client_id=1),
    _client(102, _I, "Caja USD", None,
            (_acc(902, "USD", "4800"),),
            created_at="2023-11-07T05:32:10Z", company_client_id=2),
    _client(103, _I, "Caja Chica", "Fondo fijo de administración",
            # A float-summing upstream turns 0.1 + 0.2 into this literal.
            (_acc(903, "ARS", "0.30000000000000004"),),
            created_at="2023-11-07T05:33:41Z", company_client_id=3),
    _client(104, _I, "Banco Galicia", "Cuenta corriente 0071234-5 001-9",
            (_acc(904, "ARS", "2345678.9"), _acc(905, "USD", "15000")),
            created_at="2023-11-08T13:02:00Z", company_client_id=4),
    _client(105, _I, "Banco Nación", "Descubierto autorizado hasta ARS 50.000",
            (_acc(906, "ARS", "-8300.75"),),
            created_at="2023-11-08T13:05:00Z", company_client_id=5),
    _client(106, _I, "Banco Santander", "Cuenta de inversiones",
            (_acc(907, "ARS", "98765432109.87"),),
            created_at="2023-11-08T13:09:00Z", company_client_id=6),
    _client(107, _I, "Mercado Pago", "Billetera de cobros online",
            (_acc(908, "ARS", "45210.33"),),
            created_at="2023-12-01T10:00:00Z", company_client_id=7),
    _client(109, _I, "Binance", "Billetera cripto",
            (_acc(909, "USDT", "12500.123456"),),
            created_at="2024-01-15T16:20:00Z", company_client_id=8),
    _client(110, _I, "Brubank", None,
            (_acc(910, "ARS", "0"),),
            created_at="2024-01-20T09:00:00Z", company_client_id=9),
    _client(112, _I, "Caja Fuerte", "Dólares en billetes, separados por cara",
            # Two accounts in one currency: FinSync allows it, consumers must not merge them.
            (_acc(911, "USD", "20000", name="USD cara grande"),
             _acc(912, "USD", "350.5", name="USD cara chica")),
            created_at="2024-02-02T11:11:11Z", company_client_id=10),
    _client(113, _I, "Ualá Empresas", None,
            (_acc(913, "ARS", "4500.650000000001"),),
            created_at="2024-02-10T08:30:00Z", company_client_id=11),
    _client(114, _I, "Caja Sucursal Mendoza", "Efectivo en sucursal Mendoza",
            (_acc(914, "ARS", "56789.01"), _acc(915, "USD", "1200")),
            created_at="2024-03-05T14:00:00Z", company_client_id=12),
    _client(115, _I, "FCI Money Market", "Fondo común de inversión, rescate T+0",
            (_acc(916, "ARS", "3250000.45"),),
            created_at="2024-04-01T10:00:00Z", company_client_id=13),
    _client(116, _I, "Payoneer", "Cobros del exterior",
            (_acc(917, "USD", "3200.18"),),
            created_at="2024-05-12T17:45:00Z", company_client_id=14),
    _client(117, _I, "Caja Sucursal Córdoba", "Pendiente de apertura",
            # A client without accounts yet.
            (),
            created_at="2026-10-30T12:00:00Z", updated_at="2026-10-30T12:00:00Z",
            company_client_id=15),
    _client(119, _I, "Banco Macro", "Cuenta sueldos",
            (_acc(918, "ARS", "-120.4"),),
            created_at="2024-06-03T09:15:00Z", company_client_id=16),
    # External: cuentas corrientes with suppliers and customers.
    _client(201, _E, "Café del Sur S.R.L.", "Proveedor de café para oficinas",
            (_acc(931, "ARS", "125000"),),
            created_at="2024-01-03T10:00:00Z", company_client_id=17),
    _client(202, _E, "Logística Patagónica", "Fletes Neuquén - Río Gallegos",
            (_acc(932, "ARS", "-45300.5"),),
            created_at="2024-01-04T10:00:00Z", company_client_id=18),
    _client(203, _E, "Distribuidora Norte S.A.", None,
            (_acc(933, "ARS", "0"),),
            created_at="2024-01-05T10:00:00Z", company_client_id=19),
    _client(204, _E, "Importadora Río de la Plata", "Importación de repuestos",
            (_acc(934, "USD", "18750.4"),),
            created_at="2024-01-08T10:00:00Z", company_client_id=20),
    _client(205, _E, "Juan Pérez", "Cliente minorista",
            (_acc(935, "ARS", "-1500"),),
            created_at="2024-01-09T10:00:00Z", company_client_id=21),
    _client(206, _E, "Transportes Andinos S.A.", "Fletes internacionales",
            (_acc(936, "ARS", "98230.15"), _acc(937, "USD", "-2300")),
            created_at="2024-01-10T10:00:00Z", company_client_id=22),
    _client(207, _E, "Estudio Contable Gómez & Asociados", "Honorarios mensuales",
            (_acc(938, "ARS", "85000"),),
            created_at="2024-01-11T10:00:00Z", company_client_id=23),
    _client(208, _E, "Agropecuaria La Pampa S.A.", "Cliente mayorista",
            (_acc(939, "ARS", "-1250000.75"),),
            created_at="2024-02-01T10:00:00Z", company_client_id=24),
    _client(209, _E, "Metalúrgica San Martín", None,
            (_acc(940, "ARS", "-0.7999999999999999"),),
            created_at="2024-02-02T10:00:00Z", company_client_id=25),
    _client(210, _E, "Software Patagonia SAS", "Licencias de software",
            (_acc(941, "USD", "-4500"),),
            created_at="2024-02-15T10:00:00Z", company_client_id=26),
    _client(211, _E, "Inmobiliaria Recoleta", "Alquiler de oficinas",
            (_acc(942, "ARS", "350000"),),
            created_at="2024-03-01T10:00:00Z", company_client_id=27),
    _client(212, _E, "Ferretería El Tornillo", None,
            (_acc(943, "ARS", "-3200.4"),),
            created_at="2024-03-20T10:00:00Z", company_client_id=28),
    _client(213, _E, "Cooperativa Eléctrica", "Servicio eléctrico depósito",
            (_acc(944, "ARS", "18540.22"),),
            created_at="2024-04-02T10:00:00Z", company_client_id=29),
    _client(214, _E, "Ñandú Textil S.A.", "Cliente de indumentaria",
            (_acc(945, "ARS", "-76500"),),
            created_at="2024-04-18T10:00:00Z", company_client_id=30),
    _client(215, _E, "Exportadora Cuyo Vinos", "Cliente exportación",
            (_acc(946, "USD", "-32000.5"), _acc(947, "ARS", "300.29999999999995")),
            created_at="2024-05-06T10:00:00Z", company_client_id=31),
    _client(216, _E, "Mesa OTC Cripto", "Contraparte OTC",
            (_acc(948, "USDT", "-5000.25"),),
            created_at="2024-06-10T10:00:00Z", company_client_id=32),
    _client(217, _E, "María José Fernández", None,
            (_acc(949, "ARS", "0"),),
            created_at="2024-07-01T10:00:00Z", company_client_id=33),
    _client(218, _E, "ARCA - Plan de pagos", "Plan de facilidades de pago 2025",
            (_acc(950, "ARS", "45000.8"),),
            created_at="2025-01-10T10:00:00Z", company_client_id=34),
    _client(219, _E, "Seguros La Holando", "Póliza flota de camiones",
            (_acc(951, "ARS", "12400"),),
            created_at="2025-03-15T10:00:00Z", company_client_id=35),
    _client(220, _E, "Consultora Andina LLC", "Consultoría en comercio exterior",
            (_acc(952, "USD", "2750.75"),),
            created_at="2025-08-22T10:00:00Z", company_client_id=36),
    # Another company's client in the same id space: invisible to the sandbox key.
    _client(118, _E, "Cliente de Otra Empresa", "No debe verse con la clave sandbox",
            (_acc(990, "ARS", "777"),),
            created_at="2024-06-01T10:00:00Z", company_id=FINSYNC_OTHER_COMPANY_ID,
            company_client_id=1),
)  # fmt: skip

# --------------------------------------------------------------------------- Finqware

FINQWARE_CLIENT_ID: str = "sandbox-tenant"
FINQWARE_CLIENT_SECRET: str = "sandbox-tenant-secret"


@dataclass(frozen=True)
class SandboxConsent:
    """One Finqware consent, in the shape tesoro's configuration takes it."""

    key: str
    label: str
    credentials_id: str
    access_token: str
    tenant_user_id: str

    def as_setting(self) -> dict[str, str]:
        """The consent as one entry of ``TESORO_FINQWARE_CONSENTS``."""
        return asdict(self)


SANDBOX_CONSENTS: tuple[SandboxConsent, ...] = (
    SandboxConsent(
        key="bt-main",
        label="Banca Transilvania",
        credentials_id="6e335f0b-9d16-4a7d-ad53-ebb2df0ad9cc",
        access_token="sbx-at-bt-main-3374ad2219f84732a347c25f57c33e2a",
        tenant_user_id="andes-trading",
    ),
    SandboxConsent(
        key="ing-ops",
        label="ING Bank Romania",
        credentials_id="374285a9-14fb-48db-8033-f90b2ebd1752",
        access_token="sbx-at-ing-ops-a88ce4065b564adf8ef1f901f3195f28",
        tenant_user_id="andes-trading",
    ),
    SandboxConsent(
        key="brd-legacy",
        label="BRD Groupe Société Générale",
        credentials_id="53b89ba0-9572-4f74-a5da-2f885d39368d",
        access_token="sbx-at-brd-legacy-e422edc6200a41b3a2f165bc8e05a8f6",
        tenant_user_id="andes-trading",
    ),
)

EXPIRED_CONSENT_KEYS: frozenset[str] = frozenset({"brd-legacy"})
"""Consents past their 90 days: every call with them answers 401 ``expired_credentials``."""

RENEWED_CONSENT = SandboxConsent(
    key="bt-renewed",
    label="Banca Transilvania (renewed)",
    credentials_id="b0d6a0e1-5f0c-4d8e-9a51-2c7e0f3b8d14",
    access_token="sbx-at-bt-renewed-5b1f0c9e7a2d4e63b8f1a0c4d9e2f7a1",
    tenant_user_id="andes-trading",
)
"""Banca Transilvania's consent after Andes Trading onboarded again before ``bt-main``
ended (how a PSD2 consent is renewed): the same bank accounts (same IBANs) under new
Finqware account ids (`RENEWED_ACCOUNTS`). Not one of `SANDBOX_CONSENTS`: the Finqware
simulator knows it only while its "renewed consent" switch is on (`FinqwareStore.renewed`)."""

BalanceIndicator = Literal["credit", "debit"]


@dataclass(frozen=True)
class FinqwareBalance:
    """One entry of ``/balances/get``; ``amount`` is a non-negative decimal string."""

    id: str
    type: str
    amount: str
    credit_debit_indicator: BalanceIndicator
    credit_limit_included: bool = False
    credit_line: object = None
    """As the bank writes it: null, a decimal string or number, an object carrying an
    amount, or a UK Open Banking list of ``{"Included", "Amount", "Type"}`` objects."""
    native_date: str | None = None
    """``None`` leaves the key out of the answer, as some banks do."""
    native_timestamp: str | None = None


@dataclass(frozen=True)
class FinqwareAccount:
    """One bank account reached through a consent, with the balances the bank reports."""

    id: str
    consent_key: str
    name: str
    nickname: str
    currency: str
    account_type: str
    account_sub_type: str
    iban: str
    bic: str
    listed_at: str
    """``timestamp`` of ``/accounts/get`` (Finqware writes it with a ``Z``)."""
    queried_at: str
    """``timestamp`` of ``/balances/get``: naive, microseconds, UTC by convention."""
    balances: tuple[FinqwareBalance, ...]


@dataclass(frozen=True)
class FinqwareServicer:
    """The bank behind a consent."""

    id: str
    name: str


FINQWARE_SERVICERS: Mapping[str, FinqwareServicer] = {
    "bt-main": FinqwareServicer("banca-transilvania-ro", "Banca Transilvania"),
    "ing-ops": FinqwareServicer("ing-bank-ro", "ING Bank Romania"),
    "brd-legacy": FinqwareServicer("brd-gsg-ro", "BRD - Groupe Société Générale"),
    "bt-renewed": FinqwareServicer("banca-transilvania-ro", "Banca Transilvania"),
}

_BUSINESS = "Business current account"

FINQWARE_ACCOUNTS: tuple[FinqwareAccount, ...] = (
    FinqwareAccount(
        id="69a19df6-1a2f-4d3d-9b63-3bc1bddfd89a",
        consent_key="bt-main",
        name="Cont curent Andes Trading",
        nickname="",
        currency="RON",
        account_type=_BUSINESS,
        account_sub_type="CurrentAccount",
        iban="RO43BTRLRONCRT0A56010101",
        bic="BTRLRO22",
        listed_at="2026-11-20T07:31:50Z",
        queried_at="2026-11-20T07:31:51.689168",
        balances=(
            # Two InterimBooked entries from different moments: the later one is current.
            FinqwareBalance("6aac5b32-f34a-495b-9fe3-8f8c5f6c653d", "InterimBooked", "125430.55",
                            "credit", native_timestamp="2026-11-19T09:00:00Z"),
            FinqwareBalance("590e471b-8fb3-4d53-b9a1-5dd919b9abe9", "InterimBooked", "127910.05",
                            "credit", native_timestamp="2026-11-20T07:15:00Z"),
            # The same type with and without the credit line: only the latter is the balance.
            FinqwareBalance("91d396c3-2473-4937-834d-70e028d46b45", "InterimAvailable",
                            "127910.05", "credit", native_timestamp="2026-11-20T07:15:00Z"),
            FinqwareBalance("d7a5a2e3-e28c-4df0-b00c-c85472e8536c", "InterimAvailable",
                            "177910.05", "credit", credit_limit_included=True,
                            credit_line="50000.00", native_timestamp="2026-11-20T07:15:00Z"),
            FinqwareBalance("7a922dff-5998-42b8-a18e-c13434adc8e9", "ClosingBooked", "125430.55",
                            "credit", native_date="2026-11-19"),
            FinqwareBalance("04b689c1-6c4c-4305-9f23-002108a4be1c", "OpeningBooked", "120000.00",
                            "credit", native_date="2026-11-01"),
            FinqwareBalance("e46693ac-557d-49d4-80f5-d71519e8e18b", "Expected", "126410.05",
                            "credit"),
        ),
    ),
    FinqwareAccount(
        id="0943626c-fa73-4b03-8889-0fe7a0b9455e",
        consent_key="bt-main",
        name="",
        nickname="Cont EUR export",
        currency="EUR",
        account_type=_BUSINESS,
        account_sub_type="CurrentAccount",
        iban="RO98BTRLEURCRT0A56010102",
        bic="BTRLRO22",
        listed_at="2026-11-20T07:31:50Z",
        queried_at="2026-11-20T07:31:52.104377",
        # No InterimBooked: the current balance has to fall back to ClosingBooked.
        balances=(
            FinqwareBalance("826dceb6-45b8-4a47-838b-1ce13550a901", "ClosingBooked", "18250.12345",
                            "credit", native_date="2026-11-19"),
            FinqwareBalance("390105a8-ed6d-49b6-8493-e19f4b16024a", "OpeningBooked", "17000.5",
                            "credit", native_date="2026-11-01"),
            FinqwareBalance("257ec609-a385-40ee-bbf9-7bbdc7a846b2", "Expected", "18400.12345",
                            "credit"),
            # A line written as an object; no entry includes it, so available_with_credit_line
            # is available + credit_line.
            FinqwareBalance("2f27d0c3-9ddb-4b79-9c36-b746606d25e7", "ClosingAvailable",
                            "18250.12345", "credit", native_date="2026-11-19",
                            credit_line={"amount": "5000.00", "currency": "EUR"}),
            FinqwareBalance("8c7e5fdd-1951-4d80-9b98-ee11ef8ffb05", "ForwardAvailable", "18400.1",
                            "credit", native_date="2026-11-21"),
        ),
    ),
    FinqwareAccount(
        id="da6501de-1ac7-482f-a8a4-58a413666a22",
        consent_key="ing-ops",
        name="Cont curent ING Business",
        nickname="Plăți furnizori",
        currency="RON",
        account_type=_BUSINESS,
        account_sub_type="CurrentAccount",
        iban="RO21INGB0000999901234567",
        bic="INGBROBU",
        listed_at="2026-11-20T08:02:11Z",
        queried_at="2026-11-20T08:02:12.000417",
        # In overdraft: booked balances are debits; only the credit-line figure is a credit.
        balances=(
            FinqwareBalance("e77bd7d7-de69-47a7-a07b-f79cc2ba6a9a", "InterimBooked", "3200.4",
                            "debit", native_timestamp="2026-11-20T08:00:00Z"),
            FinqwareBalance("f7f88396-893e-4a42-a77d-4ad687b561ca", "ClosingBooked", "2750.10",
                            "debit", native_date="2026-11-19"),
            FinqwareBalance("7d8245f4-4894-4149-a776-e03bf44967fa", "InterimAvailable", "3200.40",
                            "debit", native_timestamp="2026-11-20T08:00:00Z"),
            # Overdrawn into its credit line: 3,200.40 used of a 10,000.00 line, written the
            # UK Open Banking way.
            FinqwareBalance("ad1736d3-bce1-4340-9a7c-32d05584aef5", "InterimAvailable", "6799.60",
                            "credit", credit_limit_included=True,
                            credit_line=[{"Included": True,
                                          "Amount": {"Amount": "10000.00", "Currency": "RON"},
                                          "Type": "Pre-Agreed"}],
                            native_timestamp="2026-11-20T08:00:00Z"),
            FinqwareBalance("3c4a5776-ad19-4801-a2fc-0f3d51e51af7", "OpeningBooked", "2750.10",
                            "debit", native_date="2026-11-01"),
            FinqwareBalance("acfb0373-87b3-410b-b1c3-d28db21bcd19", "PreviouslyClosedBooked",
                            "1980.75", "debit", native_date="2026-10-31"),
        ),
    ),
    FinqwareAccount(
        id="60da987a-ffe3-4fa8-ad7e-a0877ba621a2",
        consent_key="ing-ops",
        name="",
        nickname="",
        currency="USD",
        account_type=_BUSINESS,
        account_sub_type="CurrentAccount",
        iban="RO91INGB0000999901234568",
        bic="INGBROBU",
        listed_at="2026-11-20T08:02:11Z",
        queried_at="2026-11-20T08:02:12.356021",
        # Booked figures only: no "available"-family type at all, so available is unknown.
        balances=(
            # A line written as a bare JSON number...
            FinqwareBalance("8b8f3f83-fcbd-4751-9c8d-6efaafd17e8b", "InterimBooked", "25640.50001",
                            "credit", native_timestamp="2026-11-20T08:00:00Z", credit_line=2500),
            # ...and one in another currency than the account's, which is not used.
            FinqwareBalance("5405e589-505c-474f-bdd1-9d43d478ae5b", "ClosingBooked", "25640.5",
                            "credit", native_date="2026-11-19",
                            credit_line=[{"Included": False,
                                          "Amount": {"Amount": "40000.00", "Currency": "RON"},
                                          "Type": "Credit"}]),
            FinqwareBalance("fd1c318f-dd96-443c-8846-89cb1df16e27", "OpeningBooked", "0.00",
                            "credit", native_date="2026-11-01"),
            FinqwareBalance("630aff12-d1b3-40fc-9299-1df7eed131bc", "InterimCleared", "25640.5",
                            "credit", native_timestamp="2026-11-20T08:00:00Z"),
        ),
    ),
    FinqwareAccount(
        id="9f0cc4d4-9c80-4d56-a8c7-da591fb00af2",
        consent_key="brd-legacy",
        name="Cont curent BRD",
        nickname="",
        currency="RON",
        account_type=_BUSINESS,
        account_sub_type="CurrentAccount",
        iban="RO38BRDE445SV12345678901",
        bic="BRDEROBU",
        listed_at="2026-05-02T10:00:00Z",
        queried_at="2026-05-02T10:00:01.250000",
        balances=(
            FinqwareBalance("1b6c9a87-ca18-4be0-a4b6-a8885f5bfa92", "InterimBooked", "980.00",
                            "credit", native_timestamp="2026-05-02T09:55:00Z"),
        ),
    ),
)  # fmt: skip


RENEWED_ACCOUNTS: tuple[FinqwareAccount, ...] = (
    # bt-main's RON account, queried an hour later: a later InterimBooked, so this copy is
    # the one counted.
    FinqwareAccount(
        id="c41e2b7d-8a3f-4e59-b1d6-7f20a9c35e18",
        consent_key="bt-renewed",
        name="Cont curent Andes Trading",
        nickname="",
        currency="RON",
        account_type=_BUSINESS,
        account_sub_type="CurrentAccount",
        iban="RO43BTRLRONCRT0A56010101",
        bic="BTRLRO22",
        listed_at="2026-11-20T08:20:02Z",
        queried_at="2026-11-20T08:20:03.512907",
        balances=(
            FinqwareBalance("5e0b7c2a-91d4-4f3e-8b6a-2d17c9f04e35", "InterimBooked", "128010.05",
                            "credit", native_timestamp="2026-11-20T08:15:00Z"),
            FinqwareBalance("a8f3d6c1-2e5b-4a97-b0c4-6e91d2f7a053", "InterimAvailable",
                            "128010.05", "credit", native_timestamp="2026-11-20T08:15:00Z"),
            FinqwareBalance("0c7e4a92-d3b1-4f68-9e25-b4a8f1c60d77", "ClosingBooked", "125430.55",
                            "credit", native_date="2026-11-19"),
        ),
    ),
    # bt-main's EUR account, with the same closing balance of the same day: a tie on the
    # bank's time, decided by when tesoro fetched each copy.
    FinqwareAccount(
        id="f6a91c3e-0b7d-4e24-a85f-3d9c2e1b7a40",
        consent_key="bt-renewed",
        name="",
        nickname="Cont EUR export",
        currency="EUR",
        account_type=_BUSINESS,
        account_sub_type="CurrentAccount",
        iban="RO98BTRLEURCRT0A56010102",
        bic="BTRLRO22",
        listed_at="2026-11-20T08:20:02Z",
        queried_at="2026-11-20T08:20:03.904116",
        balances=(
            FinqwareBalance("9d2e6f1a-7c4b-4b08-93e5-c1a7f0d28b69", "ClosingBooked", "18250.12345",
                            "credit", native_date="2026-11-19"),
            FinqwareBalance("3b8c0e5f-a1d2-4c76-8f49-e6b2d7a91c03", "Expected", "18400.12345",
                            "credit"),
        ),
    ),
)  # fmt: skip
"""The accounts `RENEWED_CONSENT` reaches: ``bt-main``'s, by IBAN."""


def shifted_finsync_client(client: FinsyncClient, shift: timedelta) -> FinsyncClient:
    """The client with its (and its accounts') timestamps moved by `shift`."""
    return replace(
        client,
        created_at=shift_timestamp(client.created_at, shift),
        updated_at=shift_timestamp(client.updated_at, shift),
        accounts=tuple(
            replace(
                account,
                created_at=shift_timestamp(account.created_at, shift),
                updated_at=shift_timestamp(account.updated_at, shift),
            )
            for account in client.accounts
        ),
    )


def shifted_finqware_account(account: FinqwareAccount, shift: timedelta) -> FinqwareAccount:
    """The account with its listing, query and balance timestamps and dates moved."""
    return replace(
        account,
        listed_at=shift_timestamp(account.listed_at, shift),
        queried_at=shift_timestamp(account.queried_at, shift),
        balances=tuple(
            replace(
                balance,
                native_timestamp=None
                if balance.native_timestamp is None
                else shift_timestamp(balance.native_timestamp, shift),
                native_date=None
                if balance.native_date is None
                else shift_date(balance.native_date, shift),
            )
            for balance in account.balances
        ),
    )
