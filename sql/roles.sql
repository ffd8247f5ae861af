-- roles.sql: the service's login role and the little it may do.
--
-- Run as a superuser, connected to database "orders", after schema.sql:
--   psql -v app_password=SECRET -f sql/roles.sql
-- (deploy.sh sets app_password with \set on psql's standard input instead,
-- so the password is on no command line.)  Idempotent: running it again
-- only re-asserts the same attributes, password and grants.

\set ON_ERROR_STOP on

SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'orders_app')
       AS orders_app_missing \gset
\if :orders_app_missing
CREATE ROLE orders_app LOGIN PASSWORD :'app_password';
\endif
ALTER ROLE orders_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE
      NOREPLICATION NOBYPASSRLS PASSWORD :'app_password';

-- By default every role may connect to a new database and create temporary
-- tables in it; here only orders_app (and superusers) may connect.
REVOKE ALL ON DATABASE orders FROM PUBLIC;
GRANT CONNECT ON DATABASE orders TO orders_app;

-- PostgreSQL 15 no longer lets PUBLIC create in schema public; say it anyway
-- so the file means the same on an older server.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO orders_app;

-- Read, insert, delete. No UPDATE, no TRUNCATE, no DDL: the table belongs
-- to postgres.
REVOKE ALL ON TABLE orders FROM orders_app;
GRANT SELECT, INSERT, DELETE ON TABLE orders TO orders_app;
-- INSERT needs nextval() on the serial's sequence.
GRANT USAGE, SELECT ON SEQUENCE orders_orderid_seq TO orders_app;
