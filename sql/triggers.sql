-- triggers.sql: every committed write to orders, whoever makes it (the
-- service, psql, a batch job), is announced on channel orders_changed, so
-- that the invalidator (cgi-src/invalidator.c) drops what it made stale.
--
-- The payload is the affected orderids, comma-separated ("17,42"; old and
-- new ones for an UPDATE), when there are at most 100 of them, else "*"
-- (anything may have changed); TRUNCATE is "*" too. NOTIFY is delivered at
-- commit, and not at all on rollback: exactly when the cache goes stale.
--
-- Except the service's own writes (orders.self_invalidating, below): the
-- worker that made them invalidates at once, and announces them itself
-- when it cannot.
--
-- The WHEN clause skips the service's writes before any call: without
-- a PL/pgSQL call per INSERT, the service took about 3% more POSTs a
-- second (six runs each way, turn about, on a 1,000,000-row stack: close
-- to this 2-core machine's noise, but never a loss). The function checks
-- the setting again, for whoever calls it another way.
--
-- Statement-level triggers with transition tables: one call per statement
-- however many rows it touched, so a bulk load of a million rows costs one
-- notification, not a million. PostgreSQL allows one event per trigger
-- that has transition tables, hence one trigger per event.
--
-- Idempotent: deploy.sh applies it on every start, as superuser to the
-- local cluster, as DATABASE_URL's own user to an external one. One
-- transaction, so no write ever slips between a DROP and its CREATE.
-- SECURITY INVOKER: the function runs with the rights of whoever writes
-- (orders_app needs nothing more than its INSERT and DELETE), and grants
-- nobody anything.

\set ON_ERROR_STOP on

BEGIN;

-- Two deploys at once (worker hosts starting together) take turns here
-- instead of failing on each other's CREATE OR REPLACE.
SELECT pg_advisory_xact_lock(hashtext('orders: triggers')) \gset

CREATE OR REPLACE FUNCTION orders_notify_changed() RETURNS trigger
LANGUAGE plpgsql
SECURITY INVOKER
AS $$
DECLARE
    ids text;
    n   bigint;
BEGIN
    -- The service's own writes mark themselves (orders.self_invalidating,
    -- set by the statement for its transaction only): their worker drops
    -- what they made stale right after the commit, and hands the job to
    -- the invalidator with an explicit pg_notify when it cannot (see
    -- cgi-src/handlers_orders.c). Left unannounced, their commits do not
    -- queue on the lock that NOTIFY holds from commit to the WAL flush,
    -- which would make every write wait for each other's fsync.
    IF current_setting('orders.self_invalidating', true) = 'on' THEN
        RETURN NULL;
    END IF;
    -- Transition tables are only named in the branch of the trigger that
    -- has them: PL/pgSQL plans a statement when it first runs it.  Each
    -- side is cut at 101 rows: orderid is the primary key, so 101 rows on
    -- one side are already more than 100 distinct ids.
    IF TG_OP = 'INSERT' THEN
        SELECT count(*), string_agg(orderid::text, ',' ORDER BY orderid)
          INTO n, ids
          FROM (SELECT orderid FROM new_rows LIMIT 101) AS s;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT count(*), string_agg(orderid::text, ',' ORDER BY orderid)
          INTO n, ids
          FROM (SELECT orderid FROM old_rows LIMIT 101) AS s;
    ELSIF TG_OP = 'UPDATE' THEN
        SELECT count(*), string_agg(orderid::text, ',' ORDER BY orderid)
          INTO n, ids
          FROM ((SELECT orderid FROM old_rows LIMIT 101)
                UNION
                (SELECT orderid FROM new_rows LIMIT 101)) AS s;
    ELSE    -- TRUNCATE: no rows to name
        n := 101;
    END IF;

    IF n = 0 THEN       -- a statement that matched no row changed nothing
        RETURN NULL;
    END IF;
    PERFORM pg_notify('orders_changed', CASE WHEN n > 100 THEN '*' ELSE ids END);
    RETURN NULL;
END
$$;

COMMENT ON FUNCTION orders_notify_changed() IS
    'NOTIFY orders_changed with the orderids a statement wrote (or *): see sql/triggers.sql';

DROP TRIGGER IF EXISTS orders_changed_insert ON orders;
CREATE TRIGGER orders_changed_insert
    AFTER INSERT ON orders
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT
    WHEN (current_setting('orders.self_invalidating', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION orders_notify_changed();

DROP TRIGGER IF EXISTS orders_changed_update ON orders;
CREATE TRIGGER orders_changed_update
    AFTER UPDATE ON orders
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT
    WHEN (current_setting('orders.self_invalidating', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION orders_notify_changed();

DROP TRIGGER IF EXISTS orders_changed_delete ON orders;
CREATE TRIGGER orders_changed_delete
    AFTER DELETE ON orders
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT
    WHEN (current_setting('orders.self_invalidating', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION orders_notify_changed();

DROP TRIGGER IF EXISTS orders_changed_truncate ON orders;
CREATE TRIGGER orders_changed_truncate
    AFTER TRUNCATE ON orders
    FOR EACH STATEMENT
    WHEN (current_setting('orders.self_invalidating', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION orders_notify_changed();

COMMIT;
