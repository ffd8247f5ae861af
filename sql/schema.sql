-- schema.sql: the orders table, in the shape of dellstore2's "orders".
--
-- Idempotent: safe to run against a database that already has it.
-- deploy.sh runs it (with roles.sql and data.sql) once, on first deploy, as
-- the database owner; the service's own role gets only the rights in
-- roles.sql.

CREATE TABLE IF NOT EXISTS orders (
    orderid     serial        PRIMARY KEY,
    orderdate   date          NOT NULL DEFAULT current_date,
    customerid  integer       NOT NULL CHECK (customerid > 0),
    netamount   numeric(12,2) NOT NULL CHECK (netamount >= 0),
    tax         numeric(12,2) NOT NULL CHECK (tax >= 0),
    -- The service computes it; the database refuses a wrong sum all the same.
    totalamount numeric(12,2) NOT NULL CHECK (totalamount = netamount + tax)
);

-- dellstore2 has ix_order_custid; orderdate backs the from=/to= criteria.
CREATE INDEX IF NOT EXISTS ix_order_custid ON orders (customerid);
CREATE INDEX IF NOT EXISTS ix_order_orderdate ON orders (orderdate);
