// SPDX-License-Identifier: MIT OR Apache-2.0
//! tunwire: a user-space wire between two TUN interfaces, so that traffic between two local
//! addresses crosses this program instead of `lo`. One module per concern; `cli` dispatches,
//! `run` is the privilege timeline (explained in `privilege`), and main.rs only calls `cli`.

pub mod audit;
pub mod capture;
pub mod check;
pub mod claim;
pub mod cli;
pub mod clock;
pub mod config;
pub mod error;
pub mod event;
pub mod extcap;
pub mod list;
pub mod logging;
pub mod notify;
pub mod policy;
pub mod prefix;
pub mod privilege;
pub mod reader;
pub mod run;
pub mod setup;
pub mod supervisor;
pub mod wire;
