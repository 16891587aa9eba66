//! Weft's integration tests: one binary, a module per area. They drive the real `weft`
//! command, as a user would.

#[macro_use]
mod support;

mod access;
mod account_rights;
mod accounts;
mod amqp;
mod audit;
mod billing;
mod cli_validate;
mod closing;
mod connections;
mod databases;
mod email;
mod http_action;
mod library;
mod masking;
mod members;
mod mqtt;
mod nats;
mod notices;
mod oauth;
mod openapi;
mod polls;
mod privacy;
mod rate_limits;
mod redis;
mod run_control_flow;
mod run_errors;
mod run_steps;
mod scale_out;
mod serve;
mod sessions;
mod slack;
mod sso;
mod stripe;
mod subjects;
mod subscriptions;
mod tables;
mod web_app;
mod webhook_signatures;
mod workspaces;
