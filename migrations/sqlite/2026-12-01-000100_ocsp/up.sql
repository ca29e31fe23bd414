-- The OCSP responder reads a certificate's status by its serial number.
CREATE INDEX credentials_serial ON credentials(serial_hex);
