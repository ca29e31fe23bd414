-- What this database was started as. A production start records `production` (one row, id 1); a
-- development start against a database so marked is refused, so that a node that forgot RSSP_MODE
-- cannot register development operator keys in a shared production database or show codes in the
-- outbox API. marked_at: when the first production start recorded it (Unix seconds).
CREATE TABLE installation (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    mode TEXT NOT NULL,
    marked_at BIGINT NOT NULL
);
