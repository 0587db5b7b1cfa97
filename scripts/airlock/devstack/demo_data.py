"""The demo target: database ``demo`` with customers (PII to mask), orders and receipts (raw bytes from the
payment terminal, with the card number inside), owned by ``airlock_app``.

Rows come from ``generate_series`` on the server, deterministically (no ``random()``), so seeding is
fast and every run sees the same data: 10,000 customers with realistic emails, SSN-shaped values and
Luhn-valid card numbers (Visa and Mastercard prefixes), and 50,000 orders. ``airlock_app`` is the
backend credential the proxy uses; it owns the database and its tables, the agents never see it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

DEMO_DATABASE = "demo"
APP_ROLE = "airlock_app"
CUSTOMERS = 10_000
ORDERS = 50_000


@dataclass(frozen=True, slots=True)
class DemoDatabase:
    """Where the demo data lives and the application credential that owns it."""

    dsn: str = field(repr=False)  # as the application role, same host/port as the seeding connection
    database: str
    user: str
    password: str = field(repr=False)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (
    id          bigint PRIMARY KEY,
    name        text NOT NULL,
    email       text NOT NULL UNIQUE,
    ssn         text NOT NULL,
    card_number text NOT NULL,
    created_at  timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS orders (
    id          bigint PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers (id),
    amount      numeric(12, 2) NOT NULL,
    status      text NOT NULL,
    created_at  timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_customer_id ON orders (customer_id);
CREATE TABLE IF NOT EXISTS receipts (
    id          bigint PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers (id),
    payload     bytea NOT NULL
);
"""

# What a payment terminal sent back, as bytes: no column rule names it, so only the detectors (which look
# inside bytea) protect the card number in it.
_RECEIPTS = """
INSERT INTO receipts (id, customer_id, payload)
SELECT id, id, convert_to('APPROVED PAN ' || card_number || ' AUTH ' || lpad((id * 7)::text, 6, '0'), 'UTF8')
FROM customers WHERE id <= %(count)s
"""
RECEIPTS = 1_000

# The card body is 15 digits (a Visa "4" or Mastercard "51".."55" prefix, then a scrambled serial); the
# check digit makes the whole number pass Luhn: counting from the right of the body, every odd
# position is doubled (minus 9 when above 9).
_CUSTOMERS = """
INSERT INTO customers (id, name, email, ssn, card_number, created_at)
SELECT i,
       first || ' ' || last,
       lower(first) || '.' || lower(last) || i || '@' || domain,
       lpad((1 + (i * 7) % 665)::text, 3, '0') || '-' || lpad((1 + i % 99)::text, 2, '0') || '-'
           || lpad((1 + (i * 37) % 9999)::text, 4, '0'),
       body || ((10 - (SELECT sum(CASE WHEN p % 2 = 1
                                        THEN (d * 2) - CASE WHEN d * 2 > 9 THEN 9 ELSE 0 END
                                        ELSE d END)
                       FROM (SELECT substr(body, 16 - p, 1)::int AS d, p
                             FROM generate_series(1, 15) AS p) AS digits) % 10) % 10)::text,
       timestamptz '2023-01-01 00:00:00+00' + i * interval '47 minutes'
FROM (
    SELECT i,
           (ARRAY['Olivia','Liam','Emma','Noah','Ava','Elijah','Sophia','Mateo','Isabella','Lucas',
                  'Mia','Amelia','Hiroshi','Priya','Fatima','Chen','Lars','Ingrid','Kwame','Zoe'])
               [1 + i % 20] AS first,
           (ARRAY['Smith','Johnson','Garcia','Nguyen','Patel','Kim','Mueller','Rossi','Silva','Okafor',
                  'Andersen','Kowalski','Tanaka','Dubois','Haddad','Murphy','Cohen','Ivanova'])
               [1 + (i * 7) % 18] AS last,
           (ARRAY['example.com','mail.example.org','corp.example.net','example.co.uk'])[1 + i % 4] AS domain,
           CASE WHEN i % 2 = 0
                THEN '4' || lpad(((i::bigint * 982451653) % 100000000000000)::text, 14, '0')
                ELSE '5' || (1 + i % 5)::text || lpad(((i::bigint * 982451653) % 10000000000000)::text, 13, '0')
           END AS body
    FROM generate_series(1::bigint, %(count)s) AS i
) AS generated
"""

_ORDERS = """
INSERT INTO orders (id, customer_id, amount, status, created_at)
SELECT i,
       1 + (i * 7919) %% %(customers)s,
       round(((i * 104729) %% 500000) / 100.0 + 1, 2),
       (ARRAY['pending','paid','shipped','delivered','refunded','cancelled'])[1 + (i * 13) %% 6],
       timestamptz '2024-01-01 00:00:00+00' + i * interval '9 minutes'
FROM generate_series(1::bigint, %(count)s) AS i
"""


def seed_demo(conn_dsn: str, app_password: str | None = None) -> DemoDatabase:
    """Create (or complete) the demo database as a superuser; return the application credential.

    Idempotent: tables are filled only when empty. The role's password is set to ``app_password``, or
    a freshly generated one, on every call, so the returned credential is always the valid one.
    """
    password = app_password or secrets.token_urlsafe(24)
    with psycopg.connect(conn_dsn, autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (APP_ROLE,)).fetchone()
        verb = "ALTER ROLE" if exists else "CREATE ROLE"
        admin.execute(sql.SQL(verb + " {} LOGIN PASSWORD {}").format(sql.Identifier(APP_ROLE), sql.Literal(password)))
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DEMO_DATABASE,)).fetchone():
            admin.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(DEMO_DATABASE), sql.Identifier(APP_ROLE))
            )
    with psycopg.connect(make_conninfo(conn_dsn, dbname=DEMO_DATABASE)) as conn:
        # Create as the application role, so it owns the tables without a separate ALTER ... OWNER.
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(APP_ROLE)))
        conn.execute(_SCHEMA)
        if conn.execute("SELECT NOT EXISTS (SELECT 1 FROM customers)").fetchone() == (True,):
            conn.execute(_CUSTOMERS.replace("%(count)s", str(CUSTOMERS)))
        if conn.execute("SELECT NOT EXISTS (SELECT 1 FROM orders)").fetchone() == (True,):
            conn.execute(_ORDERS, {"customers": CUSTOMERS, "count": ORDERS})
        if conn.execute("SELECT NOT EXISTS (SELECT 1 FROM receipts)").fetchone() == (True,):
            conn.execute(_RECEIPTS, {"count": RECEIPTS})
        conn.execute("ANALYZE customers")
        conn.execute("ANALYZE orders")
        conn.execute("ANALYZE receipts")
    app_dsn = make_conninfo(conn_dsn, dbname=DEMO_DATABASE, user=APP_ROLE, password=password)
    return DemoDatabase(dsn=app_dsn, database=DEMO_DATABASE, user=APP_ROLE, password=password)
