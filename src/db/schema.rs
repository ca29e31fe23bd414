// The diesel schema; the same on SQLite and PostgreSQL (see migrations/).

diesel::table! {
    users (id) {
        id -> Text,
        username -> Text,
        password_hash -> Text,
        created_at -> BigInt,
        given_name -> Nullable<Text>,
        surname -> Nullable<Text>,
        email -> Nullable<Text>,
        phone -> Nullable<Text>,
        status -> Text,
        login_failures -> Integer,
        login_locked_until -> Nullable<BigInt>,
        totp_postpone -> Nullable<Text>,
        totp_remind_at -> Nullable<BigInt>,
        country -> Nullable<Text>,
        recovered_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    totp_factors (user_id) {
        user_id -> Text,
        secret -> Binary,
        last_step -> Nullable<BigInt>,
        failures -> Integer,
        locked_until -> Nullable<BigInt>,
        secret_seal -> Text,
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
        quota_total -> Nullable<Integer>,
        quota_used -> Integer,
        order_id -> Nullable<Text>,
        replaced_by -> Nullable<Text>,
        revocation_reason -> Nullable<Text>,
        revocation_code -> Nullable<Text>,
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
        client_id -> Nullable<Text>,
    }
}

diesel::table! {
    oauth_clients (id) {
        id -> Text,
        name -> Text,
        client_type -> Text,
        secret_digest -> Nullable<Text>,
        jwks -> Nullable<Text>,
        redirect_uris -> Text,
        scopes -> Text,
        account_user_id -> Nullable<Text>,
        created_at -> BigInt,
        last_used_at -> Nullable<BigInt>,
        disabled_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    oauth_assertions (client_id, jti) {
        client_id -> Text,
        jti -> Text,
        expires_at -> BigInt,
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
        chain_expires_at -> BigInt,
        client_id -> Nullable<Text>,
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
    ca_certificate_history (serial) {
        serial -> Text,
        ca_name -> Text,
        certificate -> Binary,
        superseded_at -> BigInt,
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
        request_id -> Nullable<Text>,
    }
}

diesel::table! {
    audit_head (id) {
        id -> Integer,
        seq -> BigInt,
        hash -> Text,
    }
}

diesel::table! {
    totp_pairings (user_id) {
        user_id -> Text,
        secret -> Binary,
        created_at -> BigInt,
        secret_seal -> Text,
    }
}

diesel::table! {
    verifications (id) {
        id -> Text,
        user_id -> Text,
        purpose -> Text,
        target -> Text,
        secret_digest -> Text,
        parent_id -> Nullable<Text>,
        payload -> Nullable<Text>,
        attempts -> Integer,
        created_at -> BigInt,
        expires_at -> BigInt,
        used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    consents (id) {
        id -> Text,
        user_id -> Text,
        document -> Text,
        version -> Text,
        accepted_at -> BigInt,
    }
}

diesel::table! {
    orders (id) {
        id -> Text,
        user_id -> Text,
        package_id -> Text,
        purpose -> Text,
        status -> Text,
        validity_years -> Integer,
        transactions -> Integer,
        net_cents -> BigInt,
        vat_cents -> BigInt,
        gross_cents -> BigInt,
        currency -> Text,
        invoice -> Text,
        invoice_number -> Nullable<Text>,
        payment_ref -> Nullable<Text>,
        credential_id -> Nullable<Text>,
        new_credential_id -> Nullable<Text>,
        personal_data_confirmed -> Bool,
        created_at -> BigInt,
        paid_at -> Nullable<BigInt>,
        fulfilled_at -> Nullable<BigInt>,
        requested_given_name -> Nullable<Text>,
        requested_surname -> Nullable<Text>,
        requested_document_id -> Nullable<Text>,
    }
}

diesel::table! {
    webhook_events (id) {
        id -> Text,
        subject_id -> Text,
        received_at -> BigInt,
    }
}

diesel::table! {
    identity_checks (id) {
        id -> Text,
        user_id -> Text,
        order_id -> Text,
        status -> Text,
        reasons -> Nullable<Text>,
        decided_by -> Nullable<Text>,
        created_at -> BigInt,
        decided_at -> Nullable<BigInt>,
        kind -> Text,
        given_name -> Nullable<Text>,
        surname -> Nullable<Text>,
        document_id -> Nullable<Text>,
        key_type -> Nullable<Text>,
    }
}

diesel::table! {
    identity_documents (id) {
        id -> Text,
        user_id -> Text,
        order_id -> Text,
        content_type -> Text,
        data -> Binary,
        sha256 -> Text,
        uploaded_at -> BigInt,
    }
}

diesel::table! {
    outbox (id) {
        id -> BigInt,
        channel -> Text,
        recipient -> Text,
        subject -> Text,
        body -> Text,
        user_id -> Nullable<Text>,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> BigInt,
        last_error -> Nullable<Text>,
        created_at -> BigInt,
        sent_at -> Nullable<BigInt>,
        secret -> Bool,
    }
}

diesel::table! {
    operators (id) {
        id -> Text,
        name -> Text,
        key_digest -> Text,
        created_at -> BigInt,
        revoked_at -> Nullable<BigInt>,
        role -> Text,
    }
}

diesel::table! {
    rekey_notices (credential_id, days_before) {
        credential_id -> Text,
        days_before -> Integer,
        sent_at -> BigInt,
    }
}

diesel::table! {
    crl_numbers (issuer) {
        issuer -> Text,
        last_number -> BigInt,
    }
}

diesel::table! {
    crls (issuer, crl_number) {
        issuer -> Text,
        crl_number -> BigInt,
        this_update -> BigInt,
        next_update -> BigInt,
        entries -> BigInt,
        der -> Binary,
    }
}

diesel::table! {
    authenticator_resets (id) {
        id -> Text,
        user_id -> Text,
        status -> Text,
        reasons -> Nullable<Text>,
        decided_by -> Nullable<Text>,
        created_at -> BigInt,
        decided_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    installation (id) {
        id -> Integer,
        mode -> Text,
        marked_at -> BigInt,
    }
}

diesel::table! {
    trust_service_keys (name) {
        name -> Text,
        key_kind -> Text,
        key_id -> Text,
        certificate -> Binary,
        created_at -> BigInt,
    }
}

diesel::table! {
    timestamps (seq) {
        seq -> BigInt,
        serial -> Text,
        gen_time -> BigInt,
        policy -> Text,
        hash_algorithm -> Text,
        imprint -> Text,
        requester -> Text,
        requester_id -> Nullable<Text>,
        credential_id -> Nullable<Text>,
    }
}

diesel::table! {
    signing_sessions (id) {
        id -> Text,
        user_id -> Text,
        credential_id -> Text,
        state -> Text,
        created_at -> BigInt,
        claimed_at -> Nullable<BigInt>,
        signed_at -> Nullable<BigInt>,
        expires_at -> BigInt,
    }
}

diesel::table! {
    signing_session_documents (session_id, position) {
        session_id -> Text,
        position -> Integer,
        name -> Text,
        output -> Text,
        level -> Text,
        digest -> Binary,
        content -> Binary,
        signed -> Nullable<Binary>,
        visible_page -> Nullable<Integer>,
        visible_x1 -> Nullable<Double>,
        visible_y1 -> Nullable<Double>,
        visible_x2 -> Nullable<Double>,
        visible_y2 -> Nullable<Double>,
        reason -> Nullable<Text>,
        location -> Nullable<Text>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    users,
    totp_factors,
    credentials,
    access_tokens,
    sads,
    ca_keys,
    ca_certificate_history,
    audit_log,
    audit_head,
    totp_pairings,
    verifications,
    consents,
    orders,
    webhook_events,
    identity_checks,
    identity_documents,
    outbox,
    operators,
    rekey_notices,
    authenticator_resets,
    installation,
    trust_service_keys,
    timestamps,
    signing_sessions,
    signing_session_documents,
    oauth_clients,
    oauth_assertions
);
