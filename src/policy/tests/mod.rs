// SPDX-License-Identifier: MIT OR Apache-2.0
//! Unit tests of the policy: `parse` (the file format and its errors) and `queries` (every
//! refusal message, allocation, robustness). Shared helpers here.

mod parse;
mod queries;
use super::*;

const PATH: &str = "/etc/tunwire/policy.conf";
const BUILTIN_WHERE: &str = "built-in policy: /etc/tunwire/policy.conf does not exist";

fn file(text: &str) -> Policy {
    Policy::parse(text, Source::File(PATH.into())).unwrap()
}

fn err(text: &str) -> String {
    Policy::parse(text, Source::File(PATH.into())).unwrap_err()
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn msg(result: Result<(), Refusal>) -> String {
    result.unwrap_err().to_string()
}

fn no_group(_: &str) -> bool {
    false
}

fn pairs(p: &Policy) -> Vec<(String, String, IpAddr, IpAddr)> {
    let pairs = p.auto_pairs();
    let tuple = |a: AutoPair| {
        let [n0, n1] = a.names;
        (n0, n1, a.addrs[0], a.addrs[1])
    };
    pairs.map(tuple).collect()
}

fn pair(n0: &str, n1: &str, a0: &str, a1: &str) -> (String, String, IpAddr, IpAddr) {
    (n0.into(), n1.into(), ip(a0), ip(a1))
}

fn prefix(text: &str) -> Prefix {
    Prefix::parse(text).unwrap()
}
