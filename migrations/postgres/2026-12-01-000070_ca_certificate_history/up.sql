-- CA certificates that were current once and were replaced by `rssp pki reissue-issuing-ca` (a new
-- certificate for the same key, e.g. with new AIA/CRL URLs). They stay published under
-- /pki/issuing-ca/<serial>.cer for validating signatures made while they were current; ca_keys holds
-- the current one. serial: the certificate's serial number in lowercase hex.
CREATE TABLE ca_certificate_history (
    serial TEXT PRIMARY KEY NOT NULL,
    ca_name TEXT NOT NULL,
    certificate BYTEA NOT NULL,
    superseded_at BIGINT NOT NULL
);
