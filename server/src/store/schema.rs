// The one schema both backends share; migrations/{sqlite,postgres} must agree with it
// (the store suite runs every query on both).

diesel::table! {
    users (id) {
        id -> BigInt,
        username -> Text,
        display_name -> Text,
        password_hash -> Nullable<Text>,
        role -> Text,
        disabled -> Bool,
        auth_source -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
        external_id -> Nullable<Text>,
        email -> Nullable<Text>,
        kind -> Text,
        last_sign_in_at -> Nullable<BigInt>,
        color_mode -> Nullable<Text>,
    }
}

diesel::table! {
    directory_mappings (id) {
        id -> BigInt,
        directory_group -> Text,
        role -> Nullable<Text>,
        group_id -> Nullable<BigInt>,
        created_at -> BigInt,
    }
}

diesel::table! {
    groups (id) {
        id -> BigInt,
        name -> Text,
        description -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    group_members (group_id, user_id) {
        group_id -> BigInt,
        user_id -> BigInt,
        added_at -> BigInt,
    }
}

diesel::table! {
    sessions (id_hash) {
        id_hash -> Text,
        user_id -> BigInt,
        csrf_token -> Text,
        created_at -> BigInt,
        last_seen_at -> BigInt,
        expires_at -> BigInt,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        sso_provider -> Nullable<Text>,
    }
}

diesel::table! {
    oidc_flows (state_hash) {
        state_hash -> Text,
        provider -> Text,
        nonce -> Text,
        verifier -> Text,
        next -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> BigInt,
        user_id -> BigInt,
        name -> Text,
        token_hash -> Text,
        prefix -> Text,
        created_at -> BigInt,
        last_used_at -> Nullable<BigInt>,
        expires_at -> Nullable<BigInt>,
        revoked -> Bool,
    }
}

diesel::table! {
    login_failures (id) {
        id -> BigInt,
        username -> Text,
        ip -> Text,
        at -> BigInt,
    }
}

diesel::table! {
    audit_events (id) {
        id -> BigInt,
        at -> BigInt,
        actor_id -> Nullable<BigInt>,
        actor_name -> Text,
        auth_method -> Nullable<Text>,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        action -> Text,
        target_type -> Nullable<Text>,
        target_id -> Nullable<Text>,
        outcome -> Text,
        details -> Text,
        seq -> BigInt,
        prev_hash -> Nullable<Text>,
        hash -> Nullable<Text>,
        api_key_id -> Nullable<BigInt>,
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
    audit_sinks (name) {
        name -> Text,
        delivered_seq -> BigInt,
        owner -> Nullable<Text>,
        lease_until -> BigInt,
    }
}

diesel::table! {
    legal_holds (user_id) {
        user_id -> BigInt,
        reason -> Text,
        placed_by -> Text,
        placed_at -> BigInt,
    }
}

diesel::table! {
    audit_checkpoints (id) {
        id -> BigInt,
        seq -> BigInt,
        head -> Text,
        at -> BigInt,
        reason -> Text,
        key_id -> Text,
        signature -> Text,
    }
}

diesel::table! {
    conversations (id) {
        id -> BigInt,
        user_id -> BigInt,
        title -> Text,
        model -> Text,
        system_prompt -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
        preset_id -> Nullable<BigInt>,
        pinned_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    messages (id) {
        id -> BigInt,
        conversation_id -> BigInt,
        role -> Text,
        content -> Text,
        model -> Nullable<Text>,
        prompt_tokens -> Nullable<BigInt>,
        completion_tokens -> Nullable<BigInt>,
        latency_ms -> Nullable<BigInt>,
        finish_reason -> Nullable<Text>,
        error -> Nullable<Text>,
        created_at -> BigInt,
        ttft_ms -> Nullable<BigInt>,
    }
}

diesel::table! {
    usage_records (id) {
        id -> BigInt,
        at -> BigInt,
        user_id -> Nullable<BigInt>,
        username -> Text,
        groups -> Text,
        api_key_id -> Nullable<BigInt>,
        source -> Text,
        model -> Text,
        provider -> Text,
        prompt_tokens -> BigInt,
        completion_tokens -> BigInt,
        ttft_ms -> Nullable<BigInt>,
        duration_ms -> BigInt,
        outcome -> Text,
        cost_nanos -> BigInt,
    }
}

diesel::table! {
    usage_daily (day, username, groups, api_key_id, model) {
        day -> BigInt,
        username -> Text,
        groups -> Text,
        api_key_id -> BigInt,
        model -> Text,
        provider -> Text,
        requests -> BigInt,
        prompt_tokens -> BigInt,
        completion_tokens -> BigInt,
        errors -> BigInt,
        cancelled -> BigInt,
        refused -> BigInt,
        cost_nanos -> BigInt,
        ttft_sum -> BigInt,
        ttft_count -> BigInt,
        duration_sum -> BigInt,
    }
}

diesel::table! {
    usage_hourly (hour, username, groups, api_key_id, model) {
        hour -> BigInt,
        username -> Text,
        groups -> Text,
        api_key_id -> BigInt,
        model -> Text,
        provider -> Text,
        requests -> BigInt,
        prompt_tokens -> BigInt,
        completion_tokens -> BigInt,
        errors -> BigInt,
        cancelled -> BigInt,
        refused -> BigInt,
        cost_nanos -> BigInt,
        ttft_sum -> BigInt,
        ttft_count -> BigInt,
        duration_sum -> BigInt,
    }
}

diesel::table! {
    model_prices (provider, model) {
        provider -> Text,
        model -> Text,
        input_micros_per_mtok -> BigInt,
        output_micros_per_mtok -> BigInt,
        set_at -> BigInt,
        per_image_micros -> BigInt,
    }
}

diesel::table! {
    message_images (id) {
        id -> BigInt,
        message_id -> BigInt,
        content_type -> Text,
        bytes -> Binary,
        created_at -> BigInt,
    }
}

diesel::table! {
    usage_counters (user_id, pool, day) {
        user_id -> BigInt,
        pool -> Text,
        day -> BigInt,
        requests -> BigInt,
        tokens -> BigInt,
        cost_nanos -> BigInt,
    }
}

diesel::table! {
    quotas (id) {
        id -> BigInt,
        user_id -> Nullable<BigInt>,
        group_id -> Nullable<BigInt>,
        pool -> Text,
        tokens_per_day -> Nullable<BigInt>,
        tokens_per_month -> Nullable<BigInt>,
        requests_per_minute -> Nullable<BigInt>,
        concurrent -> Nullable<BigInt>,
        spend_micros_per_month -> Nullable<BigInt>,
        set_at -> BigInt,
    }
}

diesel::table! {
    request_windows (user_id, pool, minute) {
        user_id -> BigInt,
        pool -> Text,
        minute -> BigInt,
        requests -> BigInt,
    }
}

diesel::table! {
    generation_slots (id) {
        id -> BigInt,
        user_id -> BigInt,
        pool -> Text,
        until -> BigInt,
    }
}

diesel::table! {
    quota_refusals (user_id, hour, limit_name) {
        user_id -> BigInt,
        hour -> BigInt,
        limit_name -> Text,
        refusals -> BigInt,
        summarized -> Bool,
    }
}

diesel::table! {
    model_access (model, group_id) {
        model -> Text,
        group_id -> BigInt,
        granted_at -> BigInt,
    }
}

diesel::table! {
    providers (id) {
        id -> BigInt,
        name -> Text,
        kind -> Text,
        base_url -> Text,
        api_key_sealed -> Nullable<Text>,
        models -> Text,
        timeout_secs -> BigInt,
        created_by -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
        speech_models -> Text,
        image_models -> Text,
    }
}

diesel::table! {
    collections (id) {
        id -> BigInt,
        name -> Text,
        description -> Text,
        owner_id -> Nullable<BigInt>,
        created_by -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    collection_readers (collection_id, group_id) {
        collection_id -> BigInt,
        group_id -> BigInt,
        granted_at -> BigInt,
    }
}

diesel::table! {
    documents (id) {
        id -> BigInt,
        collection_id -> BigInt,
        source -> Text,
        title -> Text,
        format -> Text,
        sha256 -> Text,
        bytes -> BigInt,
        pages -> Nullable<BigInt>,
        chunks -> BigInt,
        created_by -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    document_files (document_id) {
        document_id -> BigInt,
        content -> Binary,
    }
}

diesel::table! {
    chunks (id) {
        id -> BigInt,
        document_id -> BigInt,
        ordinal -> BigInt,
        chunk_key -> Text,
        heading -> Text,
        page -> Nullable<BigInt>,
        body -> Text,
    }
}

diesel::table! {
    index_changes (seq) {
        seq -> BigInt,
        collection_id -> BigInt,
        document_id -> Nullable<BigInt>,
        created_at -> BigInt,
    }
}

diesel::table! {
    ingest_jobs (id) {
        id -> BigInt,
        collection_id -> BigInt,
        source -> Text,
        bytes -> BigInt,
        status -> Text,
        outcome -> Nullable<Text>,
        error -> Nullable<Text>,
        document_id -> Nullable<BigInt>,
        cancel_requested -> Bool,
        actor -> Text,
        user_id -> Nullable<BigInt>,
        created_by -> Text,
        created_at -> BigInt,
        started_at -> Nullable<BigInt>,
        finished_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    ingest_claims (job_id) {
        job_id -> BigInt,
        replica -> Text,
        heartbeat_at -> BigInt,
    }
}

diesel::table! {
    leases (name) {
        name -> Text,
        holder -> Text,
        until -> BigInt,
    }
}

diesel::table! {
    ingest_uploads (job_id) {
        job_id -> BigInt,
        content -> Binary,
    }
}

diesel::table! {
    conversation_collections (conversation_id, collection_id) {
        conversation_id -> BigInt,
        collection_id -> BigInt,
    }
}

diesel::table! {
    message_citations (message_id, number) {
        message_id -> BigInt,
        number -> BigInt,
        collection_id -> BigInt,
        document_id -> BigInt,
        chunk_id -> BigInt,
        title -> Text,
        source -> Text,
        heading -> Text,
        page -> Nullable<BigInt>,
        body -> Text,
    }
}

diesel::table! {
    chunk_embeddings (seq) {
        seq -> BigInt,
        chunk_id -> BigInt,
        model -> Text,
        vector -> Binary,
    }
}

diesel::table! {
    presets (id) {
        id -> BigInt,
        name -> Text,
        model -> Text,
        system_prompt -> Text,
        description -> Text,
        created_by -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    preset_collections (preset_id, collection_id) {
        preset_id -> BigInt,
        collection_id -> BigInt,
    }
}

diesel::table! {
    theme (id) {
        id -> BigInt,
        product_name -> Nullable<Text>,
        primary_color -> Nullable<Text>,
        accent_color -> Nullable<Text>,
        mode -> Nullable<Text>,
        logo -> Nullable<Binary>,
        logo_type -> Nullable<Text>,
        favicon -> Nullable<Binary>,
        favicon_type -> Nullable<Text>,
        banner -> Nullable<Text>,
        banner_revision -> BigInt,
        footer_links -> Nullable<Text>,
        css -> Nullable<Text>,
        revision -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    notice_acknowledgements (user_id) {
        user_id -> BigInt,
        banner_revision -> BigInt,
        acknowledged_at -> BigInt,
    }
}

diesel::joinable!(group_members -> groups (group_id));
diesel::joinable!(legal_holds -> users (user_id));
diesel::joinable!(directory_mappings -> groups (group_id));
diesel::joinable!(model_access -> groups (group_id));
diesel::joinable!(conversations -> users (user_id));
diesel::joinable!(messages -> conversations (conversation_id));
diesel::joinable!(group_members -> users (user_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(api_tokens -> users (user_id));
diesel::joinable!(collection_readers -> collections (collection_id));
diesel::joinable!(collection_readers -> groups (group_id));
diesel::joinable!(documents -> collections (collection_id));
diesel::joinable!(document_files -> documents (document_id));
diesel::joinable!(chunks -> documents (document_id));
diesel::joinable!(ingest_jobs -> collections (collection_id));
diesel::joinable!(ingest_uploads -> ingest_jobs (job_id));
diesel::joinable!(ingest_claims -> ingest_jobs (job_id));
diesel::joinable!(conversation_collections -> conversations (conversation_id));
diesel::joinable!(conversation_collections -> collections (collection_id));
diesel::joinable!(message_citations -> messages (message_id));
diesel::joinable!(message_images -> messages (message_id));
diesel::joinable!(chunk_embeddings -> chunks (chunk_id));
diesel::joinable!(preset_collections -> presets (preset_id));
diesel::joinable!(conversations -> presets (preset_id));
diesel::joinable!(preset_collections -> collections (collection_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    groups,
    group_members,
    sessions,
    api_tokens,
    conversations,
    messages,
    usage_counters,
    usage_daily,
    usage_hourly,
    model_prices,
    theme,
    notice_acknowledgements,
    quotas,
    request_windows,
    generation_slots,
    quota_refusals,
    usage_records,
    model_access,
    legal_holds,
    directory_mappings,
    collections,
    collection_readers,
    documents,
    document_files,
    chunks,
    ingest_jobs,
    ingest_uploads,
    ingest_claims,
    conversation_collections,
    message_citations,
    message_images,
    chunk_embeddings,
    presets,
    preset_collections
);
