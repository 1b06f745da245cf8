//! The Ayush appliance: web UI, JSON API, auth, audit and theming over one database.
//! `build_app` is the one app builder; `main.rs` and the tests both use it.

pub mod assistants;
pub mod audit;
pub mod auth;
pub mod backup;
pub mod build_info;
pub mod catalog;
pub mod chat;
pub mod cli_docs;
pub mod clock;
pub mod config;
pub mod egress;
pub mod error;
pub mod http;
pub mod key_file;
pub mod knowledge;
pub mod limits;
pub mod media;
pub mod metrics;
pub mod proxies;
pub mod role;
pub mod sealed;
pub mod serve;
pub mod service_manager;
pub mod state;
pub mod status;
pub mod store;
pub mod theme;
pub mod tls;
pub mod transcription;
pub mod url;
pub mod usage;
pub mod web;

pub use ayush_models as models;
pub use http::build_app;
pub use state::AppState;
