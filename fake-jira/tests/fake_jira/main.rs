//! Integration tests of the fake Jira: each test starts its own fake on a
//! port the OS picks and talks to it over HTTP, as clients will.

mod access;
mod binary;
mod common;
mod faults;
mod fixtures;
mod liars;
mod lists;
mod rate_limit;
mod search;
mod server;
mod users;
mod validation;
