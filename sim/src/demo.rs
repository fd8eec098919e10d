//! Background activity of [`Scenario::Demo`](super::Scenario::Demo): users
//! upload files of many sizes at different speeds (synthetic parts every
//! few seconds, no bytes stored); some uploads stall, some finish and
//! commit, some finish and are never committed, some are about to expire
//! and are later purged; new uploads keep starting, within the session
//! limit. Choices come from a seeded RNG; progress follows real time.

use std::collections::HashMap;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use time::OffsetDateTime;
use tokio::time::{Instant, MissedTickBehavior};

use super::http::ShutdownSignal;
use super::{SessionSeed, SessionView, VaultControl, MAX_PARTS, MAX_PART_SIZE};

const TICK: Duration = Duration::from_secs(2);
const MIB: u64 = 1024 * 1024;
const MB: u64 = 1_000_000;
/// Most parts one upload adds per tick (bounds the work of a tick).
const MAX_PARTS_PER_TICK: u32 = 25;

const FOLDERS: [&str; 6] = [
    "Cholecap-2026",
    "Gludacta-2026",
    "CSR-Submission",
    "eTMF-Migration",
    "Site-0042",
    "Training",
];
const FILES: [(&str, &str); 7] = [
    ("Cholecap-Commercial", "mp4"),
    ("Imaging-Batch", "zip"),
    ("CSR-Appendix", "pdf"),
    ("eTMF-Export", "tar"),
    ("Investigator-Training", "mov"),
    ("Site-Binder", "pdf"),
    ("Lab-Data", "csv.gz"),
];

/// What an upload's client does.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Plan {
    /// Uploads to the end, then commits after `delay`.
    Commit { delay: Duration },
    /// Uploads to the end and never commits (the session lingers until it
    /// expires and is purged).
    NeverCommit,
    /// Uploads until this many bytes, then stops for good.
    StallAt(u64),
    /// Makes no progress.
    Stalled,
}

#[derive(Debug)]
struct Transfer {
    id: String,
    /// Bytes per second.
    rate: f64,
    part_size: u64,
    /// Bytes "sent" but not yet making a whole part.
    carry: f64,
    plan: Plan,
    /// Time spent finished (for the commit delay).
    finished_for: Duration,
}

/// A new upload to start.
#[derive(Debug, Clone, Copy)]
struct Start {
    size: u64,
    /// Share of `size` already uploaded.
    done: f64,
    /// How long ago it was created.
    age: Duration,
    /// How long ago its last part came in (if any came in).
    last_ago: Duration,
    rate: f64,
    plan: Plan,
}

#[derive(Debug)]
struct DemoVault {
    ctl: VaultControl,
    owners: Vec<u64>,
    transfers: Vec<Transfer>,
    /// Most sessions the demo keeps (leaves room for real clients).
    cap: usize,
    until_spawn: Duration,
    serial: u32,
}

/// Runs the demo activity until shutdown.
pub(crate) async fn run(vaults: Vec<VaultControl>, seed: u64, shutdown: ShutdownSignal) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut demos: Vec<DemoVault> = vaults
        .into_iter()
        .enumerate()
        .map(|(i, ctl)| DemoVault::new(ctl, i == 0))
        .collect();
    for (i, d) in demos.iter_mut().enumerate() {
        d.populate(&mut rng, i == 0);
    }
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticker.tick().await; // the first tick is immediate
    let mut last = Instant::now();
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = shutdown.wait() => break,
        }
        let now = Instant::now();
        let dt = now - last;
        last = now;
        for d in &mut demos {
            d.step(dt, &mut rng);
        }
    }
}

fn ago(now: OffsetDateTime, d: Duration) -> OffsetDateTime {
    now.checked_sub(super::clock::to_time(d)).unwrap_or(now)
}

fn mins(m: u64) -> Duration {
    Duration::from_secs(m * 60)
}

impl DemoVault {
    fn new(ctl: VaultControl, primary: bool) -> Self {
        let spec = ctl.spec();
        let mut owners: Vec<u64> = spec
            .users
            .iter()
            .filter(|u| u.active && u.file_staging)
            .map(|u| u.user_id)
            .collect();
        if owners.is_empty() {
            owners = spec.users.iter().map(|u| u.user_id).take(1).collect();
        }
        if owners.is_empty() {
            owners.push(10001400);
        }
        let share = if primary { 3 } else { 2 };
        let cap = (spec.session_limit * share / 5).max(1);
        Self {
            ctl,
            owners,
            transfers: Vec::new(),
            cap,
            until_spawn: Duration::from_secs(8),
            serial: 0,
        }
    }

    /// The opening picture: uploads in every state.
    fn populate(&mut self, rng: &mut StdRng, primary: bool) {
        let ttl = self.ctl.spec().session_ttl;
        let expiring = |rng: &mut StdRng| ttl.saturating_sub(mins(rng.random_range(2..7)));
        let commit = |rng: &mut StdRng| Plan::Commit {
            delay: Duration::from_secs(rng.random_range(3..15)),
        };
        let mut starts = vec![
            // In progress, will finish and commit.
            Start {
                size: rng.random_range(300 * MB..2_000 * MB),
                done: rng.random_range(0.1..0.6),
                age: mins(rng.random_range(5..40)),
                last_ago: Duration::from_secs(3),
                rate: rng.random_range(6.0..25.0) * MB as f64,
                plan: commit(rng),
            },
            // Stalled for an hour and more.
            Start {
                size: rng.random_range(2_000 * MB..12_000 * MB),
                done: rng.random_range(0.2..0.7),
                age: mins(rng.random_range(180..300)),
                last_ago: mins(rng.random_range(60..95)),
                rate: 0.0,
                plan: Plan::Stalled,
            },
            // About to expire (then listed as expired until purged).
            Start {
                size: rng.random_range(1_000 * MB..4_000 * MB),
                done: rng.random_range(0.3..0.8),
                age: expiring(rng),
                last_ago: mins(rng.random_range(120..240)),
                rate: 0.0,
                plan: Plan::Stalled,
            },
            // Finished hours ago, never committed.
            Start {
                size: rng.random_range(500 * MB..900 * MB),
                done: 1.0,
                age: mins(360),
                last_ago: mins(300),
                rate: 0.0,
                plan: Plan::NeverCommit,
            },
            // Will finish and never be committed.
            Start {
                size: rng.random_range(1_000 * MB..2_000 * MB),
                done: 0.5,
                age: mins(20),
                last_ago: Duration::from_secs(2),
                rate: rng.random_range(15.0..30.0) * MB as f64,
                plan: Plan::NeverCommit,
            },
        ];
        if primary {
            let size = rng.random_range(1_000 * MB..6_000 * MB);
            let half = size / 2;
            starts.extend([
                Start {
                    size: rng.random_range(3_000 * MB..6_000 * MB),
                    done: rng.random_range(0.1..0.4),
                    age: mins(rng.random_range(10..60)),
                    last_ago: Duration::from_secs(4),
                    rate: rng.random_range(10.0..30.0) * MB as f64,
                    plan: commit(rng),
                },
                // A ~38 GB upload going at a good clip.
                Start {
                    size: 38_000 * MB + rng.random_range(0..900 * MB),
                    done: 0.35,
                    age: mins(120),
                    last_ago: Duration::from_secs(5),
                    rate: rng.random_range(25.0..45.0) * MB as f64,
                    plan: commit(rng),
                },
                Start {
                    size: rng.random_range(1_000 * MB..5_000 * MB),
                    done: rng.random_range(0.1..0.5),
                    age: mins(rng.random_range(200..400)),
                    last_ago: mins(rng.random_range(61..80)),
                    rate: 0.0,
                    plan: Plan::Stalled,
                },
                Start {
                    size: rng.random_range(500 * MB..3_000 * MB),
                    done: rng.random_range(0.1..0.9),
                    age: expiring(rng),
                    last_ago: mins(200),
                    rate: 0.0,
                    plan: Plan::Stalled,
                },
                // Too slow to finish before it expires (at risk).
                Start {
                    size: 30_000 * MB,
                    done: 0.1,
                    age: Duration::from_secs(60 * 3600).min(ttl.saturating_sub(mins(60))),
                    last_ago: Duration::from_secs(10),
                    rate: 150_000.0,
                    plan: commit(rng),
                },
                // Just created; will stall halfway.
                Start {
                    size,
                    done: 0.0,
                    age: Duration::ZERO,
                    last_ago: Duration::ZERO,
                    rate: rng.random_range(10.0..20.0) * MB as f64,
                    plan: Plan::StallAt(half),
                },
                Start {
                    size: rng.random_range(200 * MB..800 * MB),
                    done: 0.0,
                    age: Duration::from_secs(30),
                    last_ago: Duration::from_secs(30),
                    rate: rng.random_range(5.0..15.0) * MB as f64,
                    plan: commit(rng),
                },
            ]);
        }
        for s in starts {
            self.start(rng, s);
        }
    }

    /// Creates a session for `s` (if under the cap) and tracks it.
    fn start(&mut self, rng: &mut StdRng, s: Start) {
        if self.ctl.sessions().len() >= self.cap {
            return;
        }
        let now = self.ctl.now();
        let owner = self.owners[self.serial as usize % self.owners.len()];
        self.serial += 1;
        let folder = FOLDERS[rng.random_range(0..FOLDERS.len())];
        let (stem, ext) = FILES[rng.random_range(0..FILES.len())];
        let path = format!("/u{owner}/{folder}/{stem}-{:03}.{ext}", self.serial);
        let created = ago(now, s.age);
        let mut seed = SessionSeed::new(path, owner, s.size, created);
        seed.expiration = super::clock::add(created, self.ctl.spec().session_ttl);
        let id = self.ctl.insert_session(seed);

        // Whole parts of one size, enough of them for the size.
        let floor = s.size.div_ceil(u64::from(MAX_PARTS)).div_ceil(MIB) * MIB;
        let choices = [5, 8, 10, 16, 25, 32, 50];
        let part_size = (choices[rng.random_range(0..choices.len())] * MIB)
            .max(floor)
            .min(MAX_PART_SIZE);
        let target = (s.size as f64 * s.done.clamp(0.0, 1.0)) as u64;
        let mut uploaded = 0;
        while uploaded < target {
            let part = part_size.min(s.size - uploaded);
            if !self.ctl.add_synthetic_part(&id, part) {
                break;
            }
            uploaded += part;
        }
        if uploaded > 0 {
            self.ctl
                .inner
                .set_last_uploaded(&id, ago(now, s.last_ago).max(created));
        }
        self.transfers.push(Transfer {
            id,
            rate: s.rate,
            part_size,
            carry: 0.0,
            plan: s.plan,
            finished_for: Duration::ZERO,
        });
    }

    /// Advances every upload by `dt` of real time, and maybe starts one.
    fn step(&mut self, dt: Duration, rng: &mut StdRng) {
        let now = self.ctl.now();
        let views: HashMap<String, SessionView> = self
            .ctl
            .sessions()
            .into_iter()
            .map(|v| (v.id.clone(), v))
            .collect();
        // Sessions committed, aborted or purged by anyone are forgotten.
        self.transfers.retain(|t| views.contains_key(&t.id));
        for t in &mut self.transfers {
            let Some(v) = views.get(&t.id) else { continue };
            if now > v.expiration {
                continue; // a client gets errors on an expired session
            }
            let mut uploaded = v.uploaded;
            if uploaded >= v.size {
                if let Plan::Commit { delay } = t.plan {
                    t.finished_for += dt;
                    if t.finished_for >= delay {
                        self.ctl.remove_session(&t.id);
                    }
                }
                continue;
            }
            let stop_at = match t.plan {
                Plan::Stalled => continue,
                Plan::StallAt(at) if uploaded >= at => {
                    t.plan = Plan::Stalled;
                    continue;
                }
                Plan::StallAt(at) => at,
                Plan::Commit { .. } | Plan::NeverCommit => u64::MAX,
            };
            t.carry += t.rate * dt.as_secs_f64() * rng.random_range(0.6..1.4);
            for _ in 0..MAX_PARTS_PER_TICK {
                let part = t.part_size.min(v.size - uploaded);
                if t.carry < part as f64 || uploaded >= stop_at {
                    break;
                }
                if !self.ctl.add_synthetic_part(&t.id, part) {
                    t.plan = Plan::Stalled; // changed behind our back
                    break;
                }
                t.carry -= part as f64;
                uploaded += part;
                if uploaded >= v.size {
                    break;
                }
            }
            // Don't bank more than a couple of parts' worth of time.
            t.carry = t.carry.min(2.0 * t.part_size as f64);
        }
        self.until_spawn = self.until_spawn.saturating_sub(dt);
        if self.until_spawn.is_zero() {
            self.until_spawn = Duration::from_secs(rng.random_range(10..30));
            if views.len() >= self.cap {
                self.abort_oldest_idle(&views, now);
            }
            let s = self.random_start(rng);
            self.start(rng, s);
        }
    }

    /// Aborts the upload idle the longest, as a user
    /// cleaning up would; without this, stalled and never-committed
    /// uploads would fill the cap for days and new activity would stop.
    /// Sessions about to expire are left alone: they go by themselves, and
    /// they are part of the picture.
    fn abort_oldest_idle(&mut self, views: &HashMap<String, SessionView>, now: OffsetDateTime) {
        let soon = super::clock::add(now, mins(30));
        let oldest = self
            .transfers
            .iter()
            .filter(|t| {
                let done = views.get(&t.id).is_some_and(|v| v.uploaded >= v.size);
                t.plan == Plan::Stalled || (t.plan == Plan::NeverCommit && done)
            })
            .filter_map(|t| views.get(&t.id))
            .filter(|v| v.expiration > soon)
            .min_by_key(|v| v.last_uploaded)
            .map(|v| v.id.clone());
        if let Some(id) = oldest {
            self.ctl.remove_session(&id);
            self.transfers.retain(|t| t.id != id);
        }
    }

    /// A new upload of a random kind.
    fn random_start(&self, rng: &mut StdRng) -> Start {
        let fresh = |size: u64, rate_mb: f64, plan: Plan| Start {
            size,
            done: 0.0,
            age: Duration::ZERO,
            last_ago: Duration::ZERO,
            rate: rate_mb * MB as f64,
            plan,
        };
        let commit = Plan::Commit {
            delay: Duration::from_secs(rng.random_range(2..20)),
        };
        match rng.random_range(0..100) {
            0..40 => fresh(
                rng.random_range(200 * MB..900 * MB),
                rng.random_range(5.0..25.0),
                commit,
            ),
            40..60 => fresh(
                rng.random_range(1_000 * MB..8_000 * MB),
                rng.random_range(8.0..40.0),
                commit,
            ),
            60..68 => fresh(
                rng.random_range(1_000 * MB..3_000 * MB),
                rng.random_range(8.0..40.0),
                Plan::NeverCommit,
            ),
            68..76 => {
                let size = rng.random_range(1_000 * MB..8_000 * MB);
                let at = (size as f64 * rng.random_range(0.2..0.8)) as u64;
                fresh(size, rng.random_range(8.0..40.0), Plan::StallAt(at))
            }
            76..90 => fresh(
                rng.random_range(10_000 * MB..40_000 * MB),
                rng.random_range(20.0..60.0),
                commit,
            ),
            _ => Start {
                // A client resurfacing with a nearly expired session.
                size: rng.random_range(500 * MB..3_000 * MB),
                done: rng.random_range(0.2..0.9),
                age: self
                    .ctl
                    .spec()
                    .session_ttl
                    .saturating_sub(mins(rng.random_range(3..9))),
                last_ago: mins(rng.random_range(90..240)),
                rate: 0.0,
                plan: Plan::Stalled,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SimClock;
    use crate::vault::Vault;
    use crate::{SimConfig, MIN_PART_SIZE};
    use std::sync::Arc;

    fn demo_vaults() -> Vec<DemoVault> {
        let clock = Arc::new(SimClock::new());
        SimConfig::demo()
            .vaults
            .into_iter()
            .enumerate()
            .map(|(i, spec)| {
                let ctl = VaultControl {
                    inner: Arc::new(Vault::new(spec, Arc::clone(&clock))),
                };
                DemoVault::new(ctl, i == 0)
            })
            .collect()
    }

    fn check_consistent(views: &[SessionView]) {
        for v in views {
            assert!(v.uploaded <= v.size, "{v:?}");
            assert_eq!(v.part_records, v.uploaded_parts, "{v:?}");
            assert!(v.created <= v.last_uploaded, "{v:?}");
            assert!(v.created < v.expiration, "{v:?}");
        }
    }

    #[test]
    fn populates_every_state_consistently() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut demos = demo_vaults();
        for (i, d) in demos.iter_mut().enumerate() {
            d.populate(&mut rng, i == 0);
        }
        let main = demos[0].ctl.sessions();
        let site = demos[1].ctl.sessions();
        assert_eq!(main.len(), 12);
        assert_eq!(site.len(), 5);
        check_consistent(&main);
        check_consistent(&site);
        let now = demos[0].ctl.now();
        let hour = time::Duration::hours(1);
        assert!(
            main.iter()
                .filter(|v| now - v.last_uploaded >= hour && v.uploaded < v.size)
                .count()
                >= 2
        );
        assert!(main.iter().any(|v| v.uploaded == v.size));
        assert!(main.iter().any(|v| v.size > 38_000 * MB));
        let soon = main
            .iter()
            .filter(|v| v.expiration - now < time::Duration::minutes(8))
            .count();
        assert_eq!(soon, 2);
        let owners: std::collections::HashSet<u64> = main.iter().map(|v| v.owner).collect();
        assert!(owners.len() >= 4, "{owners:?}");
    }

    #[test]
    fn steps_make_progress_commit_and_stay_under_cap() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut demos = demo_vaults();
        for (i, d) in demos.iter_mut().enumerate() {
            d.populate(&mut rng, i == 0);
        }
        let before: u64 = demos[0].ctl.sessions().iter().map(|v| v.uploaded).sum();
        for _ in 0..300 {
            for d in &mut demos {
                d.step(TICK, &mut rng);
                assert!(d.ctl.sessions().len() <= d.cap);
                check_consistent(&d.ctl.sessions());
            }
        }
        let main = &demos[0];
        let after: u64 = main.ctl.sessions().iter().map(|v| v.uploaded).sum();
        assert_ne!(before, after);
        // Every committed-then-removed upload obeyed the part size rules
        // while listed; the ones left still do.
        for v in main.ctl.sessions() {
            if v.uploaded_parts > 1 && v.uploaded == v.size {
                assert!(v.uploaded >= MIN_PART_SIZE);
            }
        }
        assert!(main.serial > 12, "new uploads were started");
    }

    #[test]
    fn a_full_vault_makes_room_for_new_uploads() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut d = demo_vaults().remove(0);
        d.cap = 12;
        d.populate(&mut rng, true);
        assert_eq!(d.ctl.sessions().len(), 12);
        let before = d.ctl.sessions();
        d.until_spawn = Duration::ZERO;
        d.step(Duration::from_millis(1), &mut rng);
        let after = d.ctl.sessions();
        assert_eq!(after.len(), 12);
        let gone: Vec<&SessionView> = before
            .iter()
            .filter(|b| !after.iter().any(|a| a.id == b.id))
            .collect();
        let new = after
            .iter()
            .filter(|a| !before.iter().any(|b| b.id == a.id))
            .count();
        assert_eq!((gone.len(), new), (1, 1));
        // The one idle longest: finished 5 h ago and never committed.
        assert_eq!(gone[0].uploaded, gone[0].size);
        let idle = d.ctl.now() - gone[0].last_uploaded;
        assert!(idle >= time::Duration::hours(5), "{idle}");
        assert!(
            idle < time::Duration::hours(5) + time::Duration::seconds(5),
            "{idle}"
        );
    }
}
