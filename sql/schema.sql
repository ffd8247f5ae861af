-- schema.sql: the orders table, in the shape of dellstore2's "orders".
--
-- Idempotent: safe to run against a database that already has it, and it
-- brings a table from an earlier deploy up to date. A psql script (\gset,
-- \if). deploy.sh runs it as the database owner: with roles.sql and data.sql
-- on the first deploy, and alone on every later one to its local cluster;
-- the service's own role gets only the rights in roles.sql.

CREATE TABLE IF NOT EXISTS orders (
    orderid     serial        PRIMARY KEY,
    orderdate   date          NOT NULL DEFAULT current_date,
    customerid  integer       NOT NULL CHECK (customerid > 0),
    netamount   numeric(12,2) NOT NULL CHECK (netamount >= 0),
    tax         numeric(12,2) NOT NULL CHECK (tax >= 0),
    -- The service computes it; the database refuses a wrong sum all the same.
    totalamount numeric(12,2) NOT NULL CHECK (totalamount = netamount + tax)
);

-- orderdate backs the from=/to= criteria. A customer's count (the common
-- criterion, and a slow count) reads ix_order_custid_date alone: it holds
-- every column a criterion names, so once VACUUM has marked the table's
-- pages all-visible the count is an index-only scan, with no visit to the
-- table's scattered rows. It replaces dellstore2's ix_order_custid
-- (customerid alone), which it serves as well: two would cost every
-- insert one index more.
CREATE INDEX IF NOT EXISTS ix_order_custid_date
    ON orders (customerid, orderdate) INCLUDE (totalamount);
DROP INDEX IF EXISTS ix_order_custid;
CREATE INDEX IF NOT EXISTS ix_order_orderdate ON orders (orderdate);

-- Idempotency-Key of POST /orders (API.md): the key a client sent with the
-- request that created the order, NULL when it sent none. Unique, so that a
-- retry, or twenty concurrent ones, can insert at most one order per key:
-- the worker's INSERT ... ON CONFLICT (idempotency_key) DO NOTHING leans on
-- this index (NULLs never conflict). The key lives and dies with its order.
--
-- Added by ALTER, not in CREATE TABLE above, so that one definition serves
-- a new table and a table from an earlier deploy alike (deploy.sh applies
-- this file on every run). The column is looked up first because ALTER
-- TABLE takes its ACCESS EXCLUSIVE lock even when IF NOT EXISTS then finds
-- nothing to do: a redeploy must not make readers queue behind a slow count.
SELECT NOT EXISTS (SELECT 1 FROM pg_attribute
                   WHERE attrelid = 'orders'::regclass
                     AND attname = 'idempotency_key' AND NOT attisdropped)
       AS orders_idempotency_key_missing \gset
\if :orders_idempotency_key_missing
ALTER TABLE orders ADD COLUMN IF NOT EXISTS idempotency_key text
    CONSTRAINT orders_idempotency_key_length
    CHECK (octet_length(idempotency_key) BETWEEN 1 AND 255);
\endif
CREATE UNIQUE INDEX IF NOT EXISTS orders_idempotency_key_key
    ON orders (idempotency_key);
