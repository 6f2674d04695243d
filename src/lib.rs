//! raaft-relay: receives Raaft cancellation-flow webhooks, routes each
//! event by rules from a config file, renders Handlebars templates and
//! delivers the messages to Slack, Discord, e-mail, webhooks or the console,
//! retrying with backoff.
//!
//! The path of an event: [`server`] (the HTTP edge) → [`startup`] (ingest) → [`routing`] (which
//! destinations, by [`rules`]) → [`store`] (the delivery queue) →
//! [`delivery`] (attempts and retries) → [`channels`] (render and send).

pub mod admin;
pub mod alerts;
pub mod auth;
pub mod channels;
pub mod check;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod encoding;
pub mod event;
pub mod metrics;
pub mod pacing;
pub mod problems;
pub mod reload;
pub mod render;
pub mod retry;
pub mod routing;
pub mod rules;
pub mod runtime;
pub mod samples;
pub mod server;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod text;
pub mod tls;

pub use runtime::Runtime;
pub use startup::Application;
