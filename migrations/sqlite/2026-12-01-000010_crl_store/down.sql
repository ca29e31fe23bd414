ALTER TABLE users DROP COLUMN country;
DROP TABLE crls;
DROP TABLE crl_numbers;
