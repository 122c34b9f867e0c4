// SPDX-License-Identifier: MIT OR Apache-2.0
//! Seeded, reproducible netem-like link impairment for one relay direction: the
//! per-packet decisions (loss, delay/jitter, duplicate, corrupt, reorder, rate)
//! and the timer queue of planned transmissions. Pure logic: no I/O, no clock
//! (times come in as ns), no allocation per packet beyond the heap push.

// The settings types come from config/impair; the engine uses only those, never the parser.

mod random;

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fmt::Write as _;

use crate::config::impair::{Impairment, Loss};
use random::{below, sample_delay, tx_time, Feature, Source};

// ---------------------------------------------------------------------------
// Decisions.

/// Why a packet was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropCause {
    /// The loss model (`loss`).
    Loss,
    /// The direction's queue held `limit` packets.
    QueueFull,
}

/// One planned transmission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// When to send, ns on the caller's monotonic clock.
    pub send_at: u64,
    /// `send_at - now`, ns (delay, jitter, serialisation and order waits).
    pub delay: u64,
    /// Flip bit `.1` (0-7) of byte `.0` before sending.
    pub corrupt: Option<(usize, u8)>,
    /// Sent at once by `reorder`, ahead of packets queued earlier.
    pub reordered: bool,
    /// This copy is the duplicate.
    pub duplicate: bool,
}

/// The fate of one packet: dropped, or sent as one or two copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub drop: Option<DropCause>,
    /// `copies[0]` is the packet, `copies[1]` its duplicate; both `None` when dropped.
    pub copies: [Option<Plan>; 2],
}

impl Decision {
    fn dropped(cause: DropCause) -> Self {
        Decision {
            drop: Some(cause),
            copies: [None, None],
        }
    }
}

/// What an engine did so far (never reset, not even by `reconfigure`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    /// Dropped by the loss model.
    pub lost: u64,
    /// Dropped because the queue was full (at `decide` or at `enqueue`).
    pub queue_full: u64,
    /// Duplicates queued.
    pub duplicated: u64,
    /// Corrupted copies queued.
    pub corrupted: u64,
    /// Copies queued to be sent at once by `reorder`.
    pub reordered: u64,
    /// Copies queued with a delay above 0.
    pub delayed: u64,
}

/// The stable capture comment of a dropped packet.
pub fn drop_comment(cause: DropCause) -> &'static str {
    match cause {
        DropCause::Loss => "tunwire: drop loss",
        DropCause::QueueFull => "tunwire: drop queue-full",
    }
}

/// Writes the stable capture comment of a sent copy into `out` (cleared
/// first; no allocation once `out` has room), e.g.
/// `tunwire: delay 20345us, duplicate, corrupt byte 34 bit 5, reorder`:
/// the delay in whole microseconds (rounded), then the marks that apply, in
/// that order.
pub fn plan_comment(plan: &Plan, out: &mut String) {
    out.clear();
    // Writing into a String cannot fail.
    let _ = write!(
        out,
        "tunwire: delay {}us",
        plan.delay.saturating_add(500) / 1000
    );
    if plan.duplicate {
        out.push_str(", duplicate");
    }
    if let Some((byte, bit)) = plan.corrupt {
        let _ = write!(out, ", corrupt byte {byte} bit {bit}");
    }
    if plan.reordered {
        out.push_str(", reorder");
    }
}

// ---------------------------------------------------------------------------
// The engine.

/// A queued copy; the heap pops the smallest (send_at, seq) first.
struct Entry<T> {
    at: u64,
    seq: u64,
    item: T,
}

impl<T> Entry<T> {
    fn key(&self) -> (u64, u64) {
        (self.at, self.seq)
    }
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl<T> Eq for Entry<T> {}

impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Entry<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        other.key().cmp(&self.key()) // reversed: BinaryHeap is a max-heap
    }
}

/// The generators of one direction, all derived from (seed, stream, feature).
struct Sources {
    loss: Source,
    delay: Source,
    dup_delay: Source,
    duplicate: Source,
    corrupt: Source,
    corrupt_pos: Source,
    reorder: Source,
}

impl Sources {
    fn new(seed: u64, stream: u64) -> Self {
        let src = |f| Source::new(seed, stream, f);
        Sources {
            loss: src(Feature::Loss),
            delay: src(Feature::Delay),
            dup_delay: src(Feature::DupDelay),
            duplicate: src(Feature::Duplicate),
            corrupt: src(Feature::Corrupt),
            corrupt_pos: src(Feature::CorruptPos),
            reorder: src(Feature::Reorder),
        }
    }
}

/// Room reserved up front is capped so an absurd `limit` cannot allocate
/// gigabytes; past this the heap grows (once) as a Vec does.
const MAX_RESERVE: usize = 1 << 16;

/// Impairment of one direction: decides each packet's fate and holds the
/// planned transmissions (payload `T`, e.g. a buffer-slot index) until due.
///
/// Use: `decide` each packet read; `enqueue` every planned copy (even those
/// with delay 0, which are due at once: this keeps order and counters right);
/// poll until `next_deadline`; send what `pop_due` returns.
pub struct Engine<T> {
    imp: Impairment,
    stream: u64,
    limit: usize,
    src: Sources,
    /// Gilbert-Elliott state: in the Bad state.
    ge_bad: bool,
    /// netem's reorder counter: packets delayed since the last early one.
    reorder_count: u32,
    /// Latest send time planned, for keep-order.
    last_send: u64,
    /// When the rate-limited link is free again.
    link_free: u64,
    seq: u64,
    queue: BinaryHeap<Entry<T>>,
    counters: Counters,
}

impl<T> Engine<T> {
    /// An engine for one direction; `stream` tells the directions apart (the
    /// relay passes 0 for side A and 1 for side B). `imp` should have passed
    /// `validate`.
    pub fn new(imp: &Impairment, seed: u64, stream: u64) -> Self {
        let limit = imp.limit() as usize;
        Engine {
            imp: imp.clone(),
            stream,
            limit,
            src: Sources::new(seed, stream),
            ge_bad: false,
            reorder_count: 0,
            last_send: 0,
            link_free: 0,
            seq: 0,
            queue: BinaryHeap::with_capacity(limit.min(MAX_RESERVE)),
            counters: Counters::default(),
        }
    }

    /// New settings and seed (SIGHUP), in effect for the next packet: the
    /// generators and model states restart as in `new`. Queued packets keep
    /// their send times, later packets still keep order behind them (unless
    /// `jitter-reorder`), and the counters carry on.
    pub fn reconfigure(&mut self, imp: &Impairment, seed: u64) {
        self.imp = imp.clone();
        self.limit = imp.limit() as usize;
        self.src = Sources::new(seed, self.stream);
        self.ge_bad = false;
        self.reorder_count = 0;
        let want = self.limit.min(MAX_RESERVE);
        self.queue.reserve(want.saturating_sub(self.queue.len()));
    }

    /// The settings in effect.
    pub fn impairment(&self) -> &Impairment {
        &self.imp
    }

    /// Decides the fate of one packet of `len` bytes read at `now` (ns).
    ///
    /// Each enabled feature draws the same number of variates for every
    /// packet, whatever the outcome, so decision k depends only on k and the
    /// seed; only queue-full drops depend on timing.
    pub fn decide(&mut self, now: u64, len: usize) -> Decision {
        let Impairment {
            delay,
            loss,
            duplicate,
            corrupt,
            reorder,
            ..
        } = self.imp;
        let src = &mut self.src;

        let lost = match loss {
            None => false,
            Some(Loss::Random(c)) => src.loss.chance(&c),
            Some(Loss::Gemodel {
                p,
                r,
                bad_loss,
                good_loss,
            }) => {
                // The state at arrival decides the loss; then it may change.
                let (leave, loss_p) = if self.ge_bad {
                    (r, bad_loss)
                } else {
                    (p, good_loss)
                };
                let hit = below(src.loss.uniform(), loss_p);
                if below(src.loss.uniform(), leave) {
                    self.ge_bad = !self.ge_bad;
                }
                hit
            }
        };
        let dup = duplicate.is_some_and(|c| src.duplicate.chance(&c));
        let corrupt_hit = corrupt.is_some_and(|c| src.corrupt.chance(&c));
        let pos = if corrupt.is_some() {
            src.corrupt_pos.rng.next_u64()
        } else {
            0
        };
        let early = reorder.is_some_and(|ro| src.reorder.chance(&ro.chance));
        let d0 = delay.map_or(0, |d| sample_delay(&d, &mut src.delay));
        let d1 = match (delay, duplicate) {
            (Some(d), Some(_)) => sample_delay(&d, &mut src.dup_delay),
            _ => 0,
        };

        // netem checks the limit first, then the loss model.
        if self.queue.len() >= self.limit {
            self.counters.queue_full += 1;
            return Decision::dropped(DropCause::QueueFull);
        }
        if lost {
            self.counters.lost += 1;
            return Decision::dropped(DropCause::Loss);
        }

        // netem: if gap == 0 || counter < gap - 1 || random >= PCT, delay
        // normally and count; else send at once and restart the count.
        let reordered = match reorder {
            Some(ro) if self.reorder_count >= ro.gap.max(1) - 1 && early => {
                self.reorder_count = 0;
                true
            }
            Some(_) => {
                self.reorder_count = self.reorder_count.saturating_add(1);
                false
            }
            None => false,
        };
        let send_at = if reordered {
            now
        } else {
            self.schedule(now, d0, len, true)
        };
        let first = Plan {
            send_at,
            delay: send_at - now,
            corrupt: (corrupt_hit && len > 0).then(|| {
                // Byte from the top 61 bits (multiply-shift), bit from the low 3.
                let byte = (u128::from(pos >> 3) * len as u128) >> 61;
                (byte as usize, (pos & 7) as u8)
            }),
            reordered,
            duplicate: false,
        };
        let second = dup.then(|| {
            // A duplicate that will not fit must not hold up later packets.
            let fits = self.queue.len() + 2 <= self.limit;
            let at = self.schedule(now, d1, len, fits);
            Plan {
                send_at: at,
                delay: at - now,
                corrupt: None,
                reordered: false,
                duplicate: true,
            }
        });
        Decision {
            drop: None,
            copies: [Some(first), second],
        }
    }

    /// Send time of a copy ready after `delay`: serialised behind the previous
    /// one at `rate`, and not before earlier packets unless `jitter-reorder`.
    fn schedule(&mut self, now: u64, delay: u64, len: usize, commit: bool) -> u64 {
        let mut at = now.saturating_add(delay);
        if let Some(rate) = self.imp.rate {
            at = at.max(self.link_free).saturating_add(tx_time(len, rate));
        }
        if !self.imp.delay.is_some_and(|d| d.jitter_reorder) {
            at = at.max(self.last_send);
        }
        if commit {
            if self.imp.rate.is_some() {
                self.link_free = at;
            }
            self.last_send = self.last_send.max(at);
        }
        at
    }

    /// Queues a copy planned by `decide`. When the queue already holds
    /// `limit` items the copy is refused, counted as `queue_full`, and `item`
    /// comes back for the caller to drop.
    pub fn enqueue(&mut self, plan: &Plan, item: T) -> Result<(), T> {
        if self.queue.len() >= self.limit {
            self.counters.queue_full += 1;
            return Err(item);
        }
        self.queue.push(Entry {
            at: plan.send_at,
            seq: self.seq,
            item,
        });
        self.seq += 1;
        let c = &mut self.counters;
        c.delayed += u64::from(plan.delay > 0);
        c.duplicated += u64::from(plan.duplicate);
        c.corrupted += u64::from(plan.corrupt.is_some());
        c.reordered += u64::from(plan.reordered);
        Ok(())
    }

    /// The earliest send time queued.
    pub fn next_deadline(&self) -> Option<u64> {
        self.queue.peek().map(|e| e.at)
    }

    /// The next item due at `now`: earliest send time first, FIFO among equal ones.
    pub fn pop_due(&mut self, now: u64) -> Option<T> {
        if self.queue.peek()?.at > now {
            return None;
        }
        self.queue.pop().map(|e| e.item)
    }

    /// Items queued.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// A copy the caller could not queue for a reason of its own (its byte budget): counted
    /// as queue-full like a refusal of `enqueue`.
    pub fn count_queue_full(&mut self) {
        self.counters.queue_full += 1;
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }
}

#[cfg(test)]
mod tests;
