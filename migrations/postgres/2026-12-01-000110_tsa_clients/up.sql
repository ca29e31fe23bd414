-- API keys have a role: 'admin' (the admin API, /api/admin/v1) or 'tsa_client' (POST /tsa when
-- tsa.access = bearer, nothing else), so that a relying party's time-stamping tool never holds an admin key.
ALTER TABLE operators ADD COLUMN role TEXT NOT NULL DEFAULT 'admin';
