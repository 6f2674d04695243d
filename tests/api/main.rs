//! Integration tests: the real relay on port 0 against real HTTP
//! receivers and a real SMTP server.

mod cli;
mod delivery;
mod discord;
mod email;
mod helpers;
mod ingest;
mod slack;
