-- clnrm/demo-postgres: run once at image build time by the postgres superuser.
CREATE ROLE demo LOGIN PASSWORD 'demo';
CREATE DATABASE demo OWNER demo;
\connect demo demo

CREATE TABLE items (
    id     integer PRIMARY KEY,
    name   text    NOT NULL,
    stock  integer NOT NULL CHECK (stock >= 0)
);
INSERT INTO items (id, name, stock) VALUES
    (1, 'anvil', 3),
    (2, 'bellows', 7),
    (3, 'chisel', 12),
    (4, 'drill', 0),
    (5, 'emery', 42);

-- A job is a row from the moment the api accepts it; the worker completes it.
CREATE TABLE jobs (
    id          text        PRIMARY KEY,
    payload     text        NOT NULL,
    status      text        NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'done', 'failed')),
    result      jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    done_at     timestamptz
);
