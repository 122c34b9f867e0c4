// SPDX-License-Identifier: MIT OR Apache-2.0
//! The tunwire binary: everything is in the library; see lib.rs.

fn main() -> std::process::ExitCode {
    tunwire::cli::main()
}
