//! Integration tests: the real relay on port 0 against real HTTP
//! receivers and a real SMTP server.

#[macro_use]
mod helpers;

mod answers;
mod check;
mod cli;
mod container;
mod delivery;
mod digests;
mod discord;
mod edge;
mod email;
mod exactly_once;
mod history;
mod ingest;
mod operate;
mod operators;
mod package;
mod portable;
mod process;
mod properties;
mod reload;
mod replies;
mod slack;
mod store;
mod store_commands;
mod store_copy;
mod trust;
mod upgrade;
