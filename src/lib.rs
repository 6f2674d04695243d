//! raaft-relay: receives Raaft cancellation-flow webhooks, routes each
//! event by rules from a config file, renders Handlebars templates and
//! delivers the messages to Slack, Discord, e-mail, webhooks or the console,
//! retrying with backoff.
//!
//! The path of an event: [`http`] (the edge and ingest) → [`routing`]
//! (which destinations, by [`rules`]) → [`store`] (the delivery
//! [`store::Queue`]) → [`delivery`] (attempts and retries) → [`channels`]
//! (render and send); [`digest_scheduler`] claims digests the same way.
//! [`routes`] puts the HTTP routes and the [`console`] on each listener,
//! and [`startup`] wires everything around the [`state`] they share; the
//! [`loaded_config`] is what a [`reload`] swaps. Each module imports only
//! those before it in docs/development.md's layout: no import cycle.

pub mod alerts;
pub mod auth;
pub mod body_gate;
pub mod channels;
pub mod check;
pub mod cli;
pub mod config;
pub mod console;
pub mod delivery;
pub mod digest;
pub mod digest_scheduler;
pub mod event;
pub mod forget;
pub mod history;
pub mod http;
pub mod loaded_config;
pub mod metrics;
pub mod pacing;
pub mod problems;
pub mod redact;
pub mod reload;
pub mod render;
pub mod retry;
pub mod routes;
pub mod routing;
pub mod rules;
pub mod samples;
pub mod schedule;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod text;
pub mod tls;

pub use loaded_config::LoadedConfig;
pub use startup::Application;
