-- A chain of SADs renewed through extendTransaction ends a fixed time after the code that started it.
ALTER TABLE sads ADD COLUMN chain_expires_at BIGINT NOT NULL DEFAULT 0;
