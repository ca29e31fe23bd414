-- Why a certificate was revoked, as a CRL reason (RFC 5280 §5.3.1), for its CRL entry and OCSP answer:
-- key_compromise, affiliation_changed, superseded, cessation_of_operation, privilege_withdrawn; NULL for
-- unspecified (then left out of both). revocation_reason keeps the words.
ALTER TABLE credentials ADD COLUMN revocation_code TEXT;
