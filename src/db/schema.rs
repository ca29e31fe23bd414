// The diesel schema; the same on SQLite and PostgreSQL (see migrations/).

diesel::table! {
    users (id) {
        id -> Text,
        username -> Text,
        password_hash -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    totp_factors (user_id) {
        user_id -> Text,
        secret -> Binary,
        last_step -> Nullable<BigInt>,
        failures -> Integer,
        locked_until -> Nullable<BigInt>,
    }
}

diesel::table! {
    credentials (id) {
        id -> Text,
        user_id -> Text,
        key_kind -> Text,
        key_id -> Text,
        certificate -> Binary,
        serial_hex -> Text,
        not_after -> BigInt,
        pin_hash -> Nullable<Text>,
        multisign -> Integer,
        status -> Text,
        revoked_at -> Nullable<BigInt>,
        created_at -> BigInt,
    }
}

diesel::table! {
    access_tokens (digest) {
        digest -> Text,
        user_id -> Text,
        kind -> Text,
        refresh_digest -> Nullable<Text>,
        expires_at -> BigInt,
        revoked -> Bool,
    }
}

diesel::table! {
    sads (digest) {
        digest -> Text,
        user_id -> Text,
        credential_id -> Text,
        hashes -> Text,
        num_signatures -> Integer,
        used -> Integer,
        expires_at -> BigInt,
        revoked -> Bool,
    }
}

diesel::table! {
    ca_keys (name) {
        name -> Text,
        key_kind -> Text,
        key_id -> Text,
        certificate -> Binary,
        created_at -> BigInt,
    }
}

diesel::table! {
    audit_log (seq) {
        seq -> BigInt,
        at -> BigInt,
        event -> Text,
        outcome -> Text,
        user_id -> Nullable<Text>,
        credential_id -> Nullable<Text>,
        detail -> Text,
        prev_hash -> Text,
        hash -> Text,
    }
}

diesel::table! {
    audit_head (id) {
        id -> Integer,
        seq -> BigInt,
        hash -> Text,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    users,
    totp_factors,
    credentials,
    access_tokens,
    sads,
    ca_keys,
    audit_log,
    audit_head
);
