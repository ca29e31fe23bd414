-- Keys of the trust services other than the CA (the time-stamping unit today), each with its current
-- certificate from the issuing CA. name: 'tsa'. The key lives on the CA's token, apart from the
-- subscribers' keys and from the CA keys.
CREATE TABLE trust_service_keys (
    name TEXT PRIMARY KEY NOT NULL,
    key_kind TEXT NOT NULL,
    key_id TEXT NOT NULL,
    certificate BLOB NOT NULL,
    created_at BIGINT NOT NULL
);

-- Every time-stamp token the TSA issued, for auditors (GET /api/admin/v1/timestamps). seq: the
-- sequence number of the token's record in the audit chain (written in the same transaction), so the
-- log is as complete as the chain, and paging by seq misses nothing committed later.
-- serial: TSTInfo serialNumber, lowercase hex (unique across nodes: the primary key refuses a repeat);
-- gen_time: TSTInfo genTime, Unix seconds; hash_algorithm: dotted OID of the message imprint;
-- imprint: the hashed message, lowercase hex; requester: 'anonymous' (POST /tsa open), 'operator'
-- (POST /tsa with an operator key) or 'person' (signatures/timestamp); requester_id: the operator's or
-- the person's id; credential_id: the credential whose quota the time-stamp spent.
CREATE TABLE timestamps (
    seq BIGINT PRIMARY KEY NOT NULL,
    serial TEXT NOT NULL UNIQUE,
    gen_time BIGINT NOT NULL,
    policy TEXT NOT NULL,
    hash_algorithm TEXT NOT NULL,
    imprint TEXT NOT NULL,
    requester TEXT NOT NULL,
    requester_id TEXT,
    credential_id TEXT
);
