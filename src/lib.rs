//! `jira_cache`: keeps a local SQLite cache of Jira data warm.
//!
//! The library holds everything: the Jira REST client ([`jira`]), the cache
//! ([`cache`]), the profiles ([`profile`]), the staged warmers ([`warm`]) and
//! the figures `cache_status` shows ([`status`]). The binaries `cache_warm` and
//! `cache_status` are thin front ends: they parse flags, set up logging, call
//! the library, print, and choose the exit code. The library never prints.

pub mod cache;
pub mod category;
pub mod deployment;
pub mod exit;
pub mod jira;
pub mod lock;
pub mod profile;
pub mod read;
pub mod schedule;
pub mod scrub;
pub mod serve;
pub mod site;
pub mod status;
mod task;
pub mod warm;

pub use category::Category;
pub use deployment::Deployment;
pub use profile::{Profile, ProfileError};
