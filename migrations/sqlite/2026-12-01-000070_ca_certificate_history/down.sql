DROP TABLE ca_certificate_history;
