-- Self-service answers the IVR reads back: account balances and order/repair status.

CREATE TABLE accounts (
    account_number text PRIMARY KEY,
    customer_id    bigint REFERENCES customers (id),
    balance        numeric(14, 2) NOT NULL DEFAULT 0,
    currency       text NOT NULL DEFAULT 'yuan',
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE orders (
    order_number text PRIMARY KEY,
    customer_id  bigint REFERENCES customers (id),
    status       text NOT NULL,      -- spoken as written, e.g. 'shipped', 'being repaired'
    updated_at   timestamptz NOT NULL DEFAULT now()
);
