//! Broker-wide connection limits, as Kafka names them: `max.connections` (profile key
//! `max_connections`) and `max.connections.per.ip` with `max.connections.per.ip.overrides`
//! (`max_connections_per_ip`, `max_connections_per_ip_overrides`). Connections land on any shard
//! (SO_REUSEPORT hashes the 4-tuple, so one address's connections spread over all of them), so
//! the counts are shared by every shard's accept loop; they are atomics, touched once when a
//! connection is accepted and once when it closes, never on the request path, and never locked.
//!
//! A connection over a limit is refused at accept: the caller logs it and closes it; connections
//! already open are not touched.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `max_connections` connections are open.
    Broker { limit: usize },
    /// The address holds its `max_connections_per_ip` (or override) connections.
    Address { ip: IpAddr, limit: u64 },
}

/// The limits and the live counts. Shared (`Arc`) by every shard.
pub struct ConnectionLimits {
    open: AtomicUsize,
    max: usize,
    per_ip: Option<PerIp>,
}

/// Per-address limits: the default (`None`: unlimited) and the overrides, with the counts.
struct PerIp {
    default_limit: Option<u64>,
    overrides: HashMap<IpAddr, u64>,
    counts: AddressCounts,
}

impl ConnectionLimits {
    /// `max` for the broker; per address, `per_ip` (`None`: unlimited) unless `overrides` names
    /// the address. Addresses are compared in canonical form (an IPv4-mapped IPv6 address is the
    /// IPv4 address), so an override applies on a dual-stack listener too.
    pub fn new(max: usize, per_ip: Option<u64>, overrides: &[(IpAddr, u64)]) -> ConnectionLimits {
        assert!(max > 0, "max_connections is at least 1");
        let per_ip = (per_ip.is_some() || !overrides.is_empty()).then(|| PerIp {
            default_limit: per_ip,
            overrides: overrides
                .iter()
                .map(|(ip, limit)| (ip.to_canonical(), *limit))
                .collect(),
            counts: AddressCounts::new(max),
        });
        ConnectionLimits {
            open: AtomicUsize::new(0),
            max,
            per_ip,
        }
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Counts a new connection from `ip`, or says which limit it is over. The permit gives the
    /// counts back when dropped (when the connection ends).
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionPermit, Refused> {
        // Count first, then check: two shards admitting at once can each see the other and
        // both refuse, but never both get in past the limit.
        let before = self.open.fetch_add(1, Ordering::SeqCst);
        if before >= self.max {
            self.open.fetch_sub(1, Ordering::SeqCst);
            return Err(Refused::Broker { limit: self.max });
        }
        let ip = ip.to_canonical();
        let counted = match &self.per_ip {
            None => false,
            Some(per_ip) => match per_ip.limit_for(ip) {
                None => false,
                Some(limit) => match per_ip.counts.admit(ip, limit) {
                    Admit::Counted => true,
                    // The address table's probe window is full (see `AddressCounts`): admitted
                    // uncounted rather than refused, since refusing would turn a full table
                    // into a denial of service.
                    Admit::Uncounted => false,
                    Admit::Over => {
                        self.open.fetch_sub(1, Ordering::SeqCst);
                        return Err(Refused::Address { ip, limit });
                    }
                },
            },
        };
        Ok(ConnectionPermit {
            limits: self.clone(),
            ip,
            counted,
        })
    }
}

impl PerIp {
    fn limit_for(&self, ip: IpAddr) -> Option<u64> {
        self.overrides.get(&ip).copied().or(self.default_limit)
    }
}

/// One admitted connection's share of the counts; gives it back on drop.
pub struct ConnectionPermit {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
    counted: bool,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        if self.counted {
            if let Some(per_ip) = &self.limits.per_ip {
                per_ip.counts.release(self.ip);
            }
        }
        let before = self.limits.open.fetch_sub(1, Ordering::SeqCst);
        debug_assert!(before > 0, "released a connection never admitted");
    }
}

/// Slots probed for an address, from its home slot on (four cache lines).
const PROBE_WINDOW: usize = 32;
/// Bits of a slot word holding the count; the rest hold the address's fingerprint.
const COUNT_BITS: u32 = 24;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
/// The table has at least this many slots...
const TABLE_SLOTS_MIN: usize = 1024;
/// ...and this many per allowed connection, so it is at most half full and a probe window is
/// practically never full (at half load, a given window of 32 is full with odds near 2^-32).
const TABLE_SLOTS_PER_CONNECTION: usize = 2;

/// What `AddressCounts::admit` did.
enum Admit {
    Counted,
    /// No slot was free in the address's probe window.
    Uncounted,
    Over,
}

/// Exact connection counts per address in a fixed lock-free table: open addressing over
/// `AtomicU64` words, each `fingerprint << COUNT_BITS | count`, 0 for a free slot. A slot is
/// claimed with a compare-and-swap when an address gets its first connection and freed the same
/// way when its count returns to zero, so the table never fills with addresses long gone.
///
/// Two shards admitting the same new address at once may claim two slots for it; counts are
/// therefore always summed over every slot with the address's fingerprint in its window, and a
/// release decrements any of them. Admission counts first and sums after (as `open` does), so
/// the sum an admission sees includes every admission before it: the limit is never exceeded.
/// Fingerprints are 40 bits of a keyed hash (random per process, so clients cannot aim at
/// collisions): two addresses sharing one and a window would share a count, with odds near
/// 2^-35 per pair, which could only refuse early, never admit past a limit.
struct AddressCounts {
    slots: Box<[AtomicU64]>,
    mask: usize,
    hasher: RandomState,
}

impl AddressCounts {
    fn new(max_connections: usize) -> AddressCounts {
        let len = max_connections
            .saturating_mul(TABLE_SLOTS_PER_CONNECTION)
            .max(TABLE_SLOTS_MIN)
            .next_power_of_two();
        AddressCounts {
            slots: (0..len).map(|_| AtomicU64::new(0)).collect(),
            mask: len - 1,
            hasher: RandomState::new(),
        }
    }

    /// The address's fingerprint (never 0) and home slot.
    fn locate(&self, ip: IpAddr) -> (u64, usize) {
        let hash = self.hasher.hash_one(ip);
        let fingerprint = (hash >> COUNT_BITS).max(1);
        (fingerprint, hash as usize & self.mask)
    }

    fn window(&self, home: usize) -> impl Iterator<Item = &AtomicU64> {
        (0..PROBE_WINDOW).map(move |i| &self.slots[(home + i) & self.mask])
    }

    fn admit(&self, ip: IpAddr, limit: u64) -> Admit {
        let (fingerprint, home) = self.locate(ip);
        if !self.increment(fingerprint, home) {
            return Admit::Uncounted;
        }
        if self.total(fingerprint, home) > limit {
            self.decrement(fingerprint, home);
            return Admit::Over;
        }
        Admit::Counted
    }

    fn release(&self, ip: IpAddr) {
        let (fingerprint, home) = self.locate(ip);
        self.decrement(fingerprint, home);
    }

    /// Adds one to a slot of the address (claiming a free one if it has none); false when the
    /// window has neither.
    fn increment(&self, fingerprint: u64, home: usize) -> bool {
        'retry: loop {
            let mut free = None;
            for slot in self.window(home) {
                let word = slot.load(Ordering::SeqCst);
                if word == 0 {
                    free = free.or(Some(slot));
                } else if word >> COUNT_BITS == fingerprint && word & COUNT_MASK < COUNT_MASK {
                    if slot
                        .compare_exchange(word, word + 1, Ordering::SeqCst, Ordering::SeqCst)
                        .is_ok()
                    {
                        return true;
                    }
                    continue 'retry;
                }
            }
            let Some(slot) = free else {
                return false;
            };
            let claimed = fingerprint << COUNT_BITS | 1;
            if slot
                .compare_exchange(0, claimed, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                return true;
            }
        }
    }

    /// The address's connections: the counts of all its slots.
    fn total(&self, fingerprint: u64, home: usize) -> u64 {
        self.window(home)
            .map(|slot| slot.load(Ordering::SeqCst))
            .filter(|word| *word != 0 && word >> COUNT_BITS == fingerprint)
            .map(|word| word & COUNT_MASK)
            .sum()
    }

    /// Takes one from a slot of the address, freeing the slot at zero.
    fn decrement(&self, fingerprint: u64, home: usize) {
        'retry: loop {
            for slot in self.window(home) {
                let word = slot.load(Ordering::SeqCst);
                if word == 0 || word >> COUNT_BITS != fingerprint {
                    continue;
                }
                debug_assert!(word & COUNT_MASK > 0, "a claimed slot holds a count");
                let next = if word & COUNT_MASK == 1 { 0 } else { word - 1 };
                if slot
                    .compare_exchange(word, next, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
                {
                    return;
                }
                continue 'retry;
            }
            debug_assert!(false, "released an address that holds no count");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    #[test]
    fn the_broker_limit_refuses_the_next_connection_and_frees_on_drop() {
        let limits = Arc::new(ConnectionLimits::new(2, None, &[]));
        let a = limits.admit(ip("10.0.0.1")).expect("first");
        let _b = limits.admit(ip("10.0.0.2")).expect("second");
        assert_eq!(
            limits.admit(ip("10.0.0.3")).err(),
            Some(Refused::Broker { limit: 2 })
        );
        drop(a);
        assert_eq!(limits.open(), 1);
        assert!(limits.admit(ip("10.0.0.3")).is_ok());
    }

    #[test]
    fn per_address_limits_and_overrides() {
        let overrides = [(ip("10.0.0.9"), 3), (ip("10.0.0.8"), 0)];
        let limits = Arc::new(ConnectionLimits::new(100, Some(1), &overrides));
        let held = limits.admit(ip("10.0.0.1")).expect("first from .1");
        assert_eq!(
            limits.admit(ip("10.0.0.1")).err(),
            Some(Refused::Address {
                ip: ip("10.0.0.1"),
                limit: 1
            })
        );
        // Another address is unaffected; an override raises (or closes) the limit.
        let _other = limits.admit(ip("10.0.0.2")).expect("first from .2");
        let nine: Vec<_> = (0..3)
            .map(|_| limits.admit(ip("10.0.0.9")).expect("override"))
            .collect();
        assert!(limits.admit(ip("10.0.0.9")).is_err());
        assert!(limits.admit(ip("10.0.0.8")).is_err());
        // An IPv4-mapped IPv6 peer is the same address.
        assert!(limits.admit(ip("::ffff:10.0.0.1")).is_err());
        drop(held);
        drop(nine);
        let _again = limits.admit(ip("::ffff:10.0.0.1")).expect("a slot again");
        assert_eq!(limits.open(), 2, "refusals gave their broker slot back");
    }

    #[test]
    fn unlimited_addresses_are_not_counted() {
        let limits = Arc::new(ConnectionLimits::new(10, None, &[(ip("10.0.0.9"), 1)]));
        let many: Vec<_> = (0..5)
            .map(|_| limits.admit(ip("10.0.0.1")).expect("unlimited"))
            .collect();
        assert_eq!(many.len(), 5);
        let _one = limits.admit(ip("10.0.0.9")).expect("override");
        assert!(limits.admit(ip("10.0.0.9")).is_err());
    }

    #[test]
    fn the_table_frees_slots_and_counts_exactly_under_threads() {
        const LIMIT: usize = 3;
        let limits = Arc::new(ConnectionLimits::new(10_000, Some(LIMIT as u64), &[]));
        let addresses: Vec<IpAddr> = (0..100u32)
            .map(|i| IpAddr::from((0x0a00_0000 + i).to_be_bytes()))
            .collect();
        // Held permits per address, counted by the test: never above the limit.
        let held_now: Vec<AtomicUsize> = addresses.iter().map(|_| AtomicUsize::new(0)).collect();
        // Two threads (two shards) each try LIMIT connections per address, over and over.
        std::thread::scope(|scope| {
            for _ in 0..2 {
                let (limits, addresses, held_now) = (&limits, &addresses, &held_now);
                scope.spawn(move || {
                    for _ in 0..100 {
                        let mut held = Vec::new();
                        for (i, address) in addresses.iter().enumerate() {
                            for _ in 0..LIMIT {
                                if let Ok(permit) = limits.admit(*address) {
                                    let now = held_now[i].fetch_add(1, Ordering::SeqCst) + 1;
                                    assert!(now <= LIMIT, "{now} connections from one address");
                                    held.push((i, permit));
                                }
                            }
                        }
                        for (i, permit) in held {
                            held_now[i].fetch_sub(1, Ordering::SeqCst);
                            drop(permit);
                        }
                    }
                });
            }
        });
        assert_eq!(limits.open(), 0);
        let counts = &limits.per_ip.as_ref().expect("per-ip").counts;
        assert!(
            counts
                .slots
                .iter()
                .all(|slot| slot.load(Ordering::SeqCst) == 0),
            "every slot freed"
        );
        let held: Vec<_> = (0..5)
            .filter_map(|_| limits.admit(addresses[7]).ok())
            .collect();
        assert_eq!(held.len(), LIMIT);
    }
}
