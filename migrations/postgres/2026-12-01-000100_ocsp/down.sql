DROP INDEX credentials_serial;
