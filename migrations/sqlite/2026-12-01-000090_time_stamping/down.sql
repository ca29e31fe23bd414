DROP TABLE timestamps;
DROP TABLE trust_service_keys;
