-- CRLs are made when something changes and on a schedule, stored, and served from storage: a request
-- for a CRL never makes the CA sign. CRL numbers come from crl_numbers, a counter per issuer that is
-- only incremented inside a write transaction, so they only grow, on every node sharing the database.
CREATE TABLE crl_numbers (
    issuer TEXT PRIMARY KEY NOT NULL,
    last_number BIGINT NOT NULL
);
INSERT INTO crl_numbers (issuer, last_number) VALUES ('root', 0);
INSERT INTO crl_numbers (issuer, last_number) VALUES ('issuing', 0);

-- entries: how many revoked certificates the CRL lists (a newer revocation makes it stale).
CREATE TABLE crls (
    issuer TEXT NOT NULL,
    crl_number BIGINT NOT NULL,
    this_update BIGINT NOT NULL,
    next_update BIGINT NOT NULL,
    entries BIGINT NOT NULL,
    der BYTEA NOT NULL,
    PRIMARY KEY (issuer, crl_number)
);

-- The person's country (ISO 3166-1 alpha-2) for the certificate subject; NULL: the configured default.
ALTER TABLE users ADD COLUMN country TEXT;
