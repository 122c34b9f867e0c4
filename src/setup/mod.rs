// SPDX-License-Identifier: MIT OR Apache-2.0
//! Setting up a wire and taking it down: create both TUNs (a busy or foreign name fails here,
//! before any routing change), remove the leftovers of killed instances, apply the plan over
//! rtnetlink, and undo what was done when a step fails. `plan` says what to do, `netlink` does
//! it, `tun` makes the devices. Must not fork, drop privileges or move packets.

pub mod netlink;
pub mod plan;
pub mod tun;

use crate::config::Config;
use crate::error::Result;
use netlink::Netlink;
use plan::Step;
use tun::{Offload, Tun};

/// A wire that is set up: both TUNs (whose fds keep the devices alive) and the steps applied.
pub struct Wire {
    pub tuns: [Tun; 2],
    pub steps: Vec<Step>,
}

/// Create the TUNs, remove leftovers, apply the plan. On failure nothing of ours stays: the TUNs
/// close (taking their addresses and routes along) and the rules are removed.
pub fn establish(cfg: &Config) -> Result<Wire> {
    let tuns = [create_tun(cfg, 0)?, create_tun(cfg, 1)?];
    let names = cfg.names();
    let mut nl = Netlink::open()?;
    let leftovers = nl.remove_our_rules(&[names[0].as_str(), names[1].as_str()])?;
    if leftovers > 0 {
        log::info!("removed {leftovers} leftover rules of an earlier instance");
    }
    let steps = plan::build(cfg);
    if let Err(e) = steps.iter().try_for_each(|step| nl.apply(step)) {
        // Closing the TUNs removes their addresses and routes; the rules must go by hand.
        drop(tuns);
        if let Err(undo) = remove_rules(&names) {
            log::error!("{undo}");
        }
        return Err(e);
    }
    Ok(Wire { tuns, steps })
}

fn create_tun(cfg: &Config, i: usize) -> Result<Tun> {
    let tun = Tun::create(&cfg.sides[i].name, cfg.offload)?;
    if cfg.offload {
        match tun.enable_offload()? {
            Offload::On { uso: true } => {}
            Offload::On { uso: false } => log::info!(
                "{}: this kernel refused UDP segmentation offload (USO); TCP offloads are on",
                tun.name
            ),
            Offload::Off => log::info!(
                "{}: this kernel refused offloads; relaying MTU-sized packets",
                tun.name
            ),
        }
    }
    Ok(tun)
}

/// Remove the rules a (possibly killed) instance on these names left. With the TUNs gone, the
/// addresses and routes went with them; the rules are all that stays.
pub fn remove_rules(names: &[String; 2]) -> Result<()> {
    let mut nl = Netlink::open()?;
    let removed = nl.remove_our_rules(&[names[0].as_str(), names[1].as_str()])?;
    log::debug!("removed {removed} rules");
    Ok(())
}
