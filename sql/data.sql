-- data.sql: the generated data set, identical on every run.
--
--   psql -v rows=12000 -f sql/data.sql      (12000 is dellstore2's size)
--
-- Arithmetic on the row number only, no random(), so every deployment has
-- the same orders and tests may rely on them.  One INSERT ... SELECT: a
-- million rows take seconds.  deploy.sh loads it once, into the empty table
-- that schema.sql has just created.

\set ON_ERROR_STOP on
\if :{?rows}
\else
\set rows 12000
\endif

INSERT INTO orders (orderdate, customerid, netamount, tax, totalamount)
SELECT date '2004-01-01' + ((g.i * 37) % 366)::integer,   -- a day of 2004
       (1 + (g.i * 7919) % 20000)::integer,               -- 1 .. 20000
       a.net,
       a.tax,
       a.net + a.tax
FROM generate_series(1::bigint, (:rows)::bigint) AS g(i)
CROSS JOIN LATERAL (
    SELECT n AS net, round(n * 0.0825, 2) AS tax
    FROM (SELECT ((g.i * 104729) % 40000 + 100) / 100.0 AS n) AS s  -- 1.00 .. 400.99
) AS a
ORDER BY g.i;   -- orderid follows i

ANALYZE orders;
