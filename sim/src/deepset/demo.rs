//! Background activity of [`Scenario::Demo`](crate::Scenario::Demo) on
//! deepset workspaces, on real time: users open sessions and upload a file
//! every few seconds; most sessions are then closed (ingestion follows,
//! about one file in ten fails with one of the documented reasons), some
//! are left open and idle. The opening picture adds history: ~300 closed
//! sessions of the past two weeks (all past their `expires_at`), a few
//! `EXPIRED` ones, open sessions idle for ~23h40m, about to expire, and one
//! closed just now whose ingestion ends a few seconds after start.
//! Choices and session ids come from a seeded RNG. Each user keeps at most
//! two sessions under the open-session limit, leaving room for real
//! clients using the same keys.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use time::OffsetDateTime;
use tokio::time::{Instant, MissedTickBehavior};

use super::{DeepsetControl, DeepsetSessionSeed, FileSeed, CLOSED, EXPIRED, OPEN};
use crate::clock;
use crate::http::ShutdownSignal;

const TICK: Duration = Duration::from_secs(2);
/// Old closed sessions in the opening picture.
const HISTORY: usize = 300;
/// Sessions the demo leaves under each user's open limit.
const HEADROOM: usize = 2;

const STEMS: [&str; 10] = [
    "Quarterly-Report",
    "Onboarding-Guide",
    "Support-FAQ",
    "Product-Spec",
    "Meeting-Notes",
    "Pricing-Sheet",
    "Master-Services-Agreement",
    "Release-Notes",
    "Customer-Survey",
    "Security-Whitepaper",
];
const GOOD_EXTS: [&str; 9] = [
    "pdf", "docx", "txt", "md", "html", "csv", "json", "pptx", "xlsx",
];
const BAD_EXTS: [&str; 4] = ["zip", "png", "exe", "mp4"];
const WRITE_MODES: [&str; 4] = ["KEEP", "KEEP", "OVERWRITE", "FAIL"];

/// What happens to a session once its files are uploaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    Close,
    LeaveOpen,
}

/// A session being uploaded into.
#[derive(Debug)]
struct Upload {
    session_id: String,
    files_left: u32,
    until_next: Duration,
    plan: Plan,
}

#[derive(Debug)]
struct DemoWorkspace {
    ctl: DeepsetControl,
    users: Vec<String>,
    uploads: Vec<Upload>,
    until_spawn: Duration,
    serial: u32,
}

/// Runs the demo activity until shutdown.
pub(crate) async fn run(workspaces: Vec<DeepsetControl>, seed: u64, shutdown: ShutdownSignal) {
    // Its own stream, so adding deepset leaves the Vault demo's choices be.
    let mut rng = StdRng::seed_from_u64(seed ^ 0x0dee_95e7);
    let mut demos: Vec<DemoWorkspace> = workspaces.into_iter().map(DemoWorkspace::new).collect();
    for d in &mut demos {
        d.populate(&mut rng);
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
    now.checked_sub(clock::to_time(d)).unwrap_or(now)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn random_id(rng: &mut StdRng) -> String {
    uuid::Builder::from_random_bytes(rng.random())
        .into_uuid()
        .hyphenated()
        .to_string()
}

impl DemoWorkspace {
    fn new(ctl: DeepsetControl) -> Self {
        let users = ctl.spec().users.iter().map(|u| u.user_id.clone()).collect();
        Self {
            ctl,
            users,
            uploads: Vec::new(),
            until_spawn: secs(3),
            serial: 0,
        }
    }

    /// A file name and size; about one in ten fails ingestion.
    fn file(&mut self, rng: &mut StdRng) -> (String, u64) {
        self.serial += 1;
        let stem = STEMS[rng.random_range(0..STEMS.len())];
        let good = GOOD_EXTS[rng.random_range(0..GOOD_EXTS.len())];
        let size = rng.random_range(2_000..25_000_000);
        let n = self.serial;
        match rng.random_range(0..100) {
            0..4 => {
                let bad = BAD_EXTS[rng.random_range(0..BAD_EXTS.len())];
                (format!("{stem}-{n:04}.{bad}"), size)
            }
            4..7 => (format!("{stem}-{n:04}.{good}"), 0),
            7..10 => (format!("{stem}-{n:04}-corrupt-scan.{good}"), size),
            _ => (format!("{stem}-{n:04}.{good}"), size),
        }
    }

    fn user(&self, rng: &mut StdRng) -> String {
        self.users
            .get(rng.random_range(0..self.users.len().max(1)))
            .cloned()
            .unwrap_or_default()
    }

    fn seed(
        &self,
        rng: &mut StdRng,
        user: String,
        created_at: OffsetDateTime,
        status: &str,
    ) -> DeepsetSessionSeed {
        DeepsetSessionSeed {
            id: Some(random_id(rng)),
            user_id: user,
            created_at,
            expires_at: Some(clock::add(created_at, self.ctl.spec().session_ttl)),
            status: status.to_owned(),
            write_mode: WRITE_MODES[rng.random_range(0..WRITE_MODES.len())].to_owned(),
            files: Vec::new(),
        }
    }

    /// The opening picture (see the module docs).
    fn populate(&mut self, rng: &mut StdRng) {
        if self.users.is_empty() {
            return;
        }
        let now = self.ctl.now();
        // History: closed and ingested, spread over the past two weeks.
        let mut ages: Vec<u64> = (0..HISTORY)
            .map(|_| rng.random_range(26 * 3600..14 * 24 * 3600))
            .collect();
        ages.sort_unstable_by(|a, b| b.cmp(a));
        for age in ages {
            let user = self.user(rng);
            let mut s = self.seed(rng, user, ago(now, secs(age)), CLOSED);
            for _ in 0..rng.random_range(1..7) {
                let (name, size) = self.file(rng);
                s.files.push(FileSeed::ingested(&name, size));
            }
            self.ctl.insert_session(s);
        }
        // Expired without being closed: their files were never ingested.
        for _ in 0..4 {
            let user = self.user(rng);
            let age = rng.random_range(25 * 3600..3 * 24 * 3600);
            let mut s = self.seed(rng, user, ago(now, secs(age)), EXPIRED);
            for _ in 0..rng.random_range(0..4) {
                let (name, size) = self.file(rng);
                s.files.push(FileSeed::pending(&name, size));
            }
            self.ctl.insert_session(s);
        }
        // Open and idle for ~23h40m: about to expire.
        for _ in 0..3 {
            let user = self.user(rng);
            let age = rng.random_range((23 * 60 + 35) * 60..(23 * 60 + 50) * 60);
            let mut s = self.seed(rng, user, ago(now, secs(age)), OPEN);
            for _ in 0..rng.random_range(1..4) {
                let (name, size) = self.file(rng);
                s.files.push(FileSeed::pending(&name, size));
            }
            self.ctl.insert_session(s);
        }
        // Closed just now: its ingestion is under way.
        let user = self.user(rng);
        let s = self.seed(rng, user, ago(now, secs(95)), OPEN);
        let id = self.ctl.insert_session(s);
        for _ in 0..rng.random_range(3..7) {
            let (name, size) = self.file(rng);
            self.ctl.add_file(&id, &name, size);
        }
        self.ctl.close_session(&id);
        // Uploads under way.
        for _ in 0..3 {
            self.spawn(rng);
        }
    }

    /// Opens a session for a random user with room under the limit.
    fn spawn(&mut self, rng: &mut StdRng) {
        let cap = self
            .ctl
            .spec()
            .max_open_per_user
            .saturating_sub(HEADROOM)
            .max(1);
        let sessions = self.ctl.sessions();
        let user = self.user(rng);
        let mine: Vec<_> = sessions
            .iter()
            .filter(|s| s.user_id == user && s.status == OPEN)
            .collect();
        if mine.len() >= cap {
            // Clean up like a user would: close the oldest idle session.
            let idle = mine
                .iter()
                .filter(|s| !self.uploads.iter().any(|u| u.session_id == s.id))
                .min_by_key(|s| s.created_at)
                .map(|s| s.id.clone());
            match idle {
                Some(id) => {
                    self.ctl.close_session(&id);
                }
                None => return,
            }
        }
        let s = self.seed(rng, user, self.ctl.now(), OPEN);
        let session_id = self.ctl.insert_session(s);
        self.uploads.push(Upload {
            session_id,
            files_left: rng.random_range(2..9),
            until_next: secs(rng.random_range(1..4)),
            plan: if rng.random_range(0..100) < 80 {
                Plan::Close
            } else {
                Plan::LeaveOpen
            },
        });
    }

    /// Advances every upload by `dt`, and maybe opens a session.
    fn step(&mut self, dt: Duration, rng: &mut StdRng) {
        let mut done = Vec::new();
        let mut adds = Vec::new();
        for (i, u) in self.uploads.iter_mut().enumerate() {
            u.until_next = u.until_next.saturating_sub(dt);
            if !u.until_next.is_zero() {
                continue;
            }
            if u.files_left == 0 {
                done.push(i);
                continue;
            }
            u.files_left -= 1;
            u.until_next = secs(rng.random_range(2..7));
            adds.push(i);
        }
        for i in adds {
            let (name, size) = self.file(rng);
            let Some(u) = self.uploads.get_mut(i) else {
                continue;
            };
            if !self.ctl.add_file(&u.session_id, &name, size) {
                // Closed or expired by someone else: stop uploading.
                u.files_left = 0;
                u.plan = Plan::LeaveOpen;
            }
        }
        for &i in done.iter().rev() {
            let u = self.uploads.remove(i);
            if u.plan == Plan::Close {
                self.ctl.close_session(&u.session_id);
            }
        }
        self.until_spawn = self.until_spawn.saturating_sub(dt);
        if self.until_spawn.is_zero() {
            self.until_spawn = secs(rng.random_range(6..16));
            self.spawn(rng);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SimClock;
    use crate::deepset::Deepset;
    use crate::SimConfig;
    use std::collections::HashSet;
    use std::sync::Arc;

    fn demo() -> DemoWorkspace {
        let clock = Arc::new(SimClock::new());
        let ds = Deepset::new(SimConfig::demo().deepset, &clock);
        let ctl = ds.control("default");
        DemoWorkspace::new(ctl.unwrap_or_else(|| unreachable!("demo has workspace default")))
    }

    fn open_per_user(d: &DemoWorkspace) -> usize {
        let sessions = d.ctl.sessions();
        d.users
            .iter()
            .map(|u| {
                sessions
                    .iter()
                    .filter(|s| &s.user_id == u && s.status == OPEN)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn populates_history_expired_and_expiring() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut d = demo();
        d.populate(&mut rng);
        let now = d.ctl.now();
        let s = d.ctl.sessions();
        assert_eq!(s.len(), HISTORY + 4 + 3 + 1 + 3);
        let count = |st: &str| s.iter().filter(|v| v.status == st).count();
        assert_eq!((count(CLOSED), count(EXPIRED), count(OPEN)), (301, 4, 6));
        let ingesting = &s[HISTORY + 7];
        assert_eq!(ingesting.status, CLOSED);
        assert!(ingesting.files.len() >= 3);
        assert!(ingesting.files.iter().all(|f| f.status == "PENDING"));
        assert!(s[..HISTORY]
            .iter()
            .all(|v| v.status == CLOSED && v.expires_at.is_some_and(|e| e < now)));
        let expiring = s
            .iter()
            .filter(|v| {
                v.status == OPEN
                    && v.expires_at
                        .is_some_and(|e| e - now < time::Duration::minutes(30))
            })
            .count();
        assert_eq!(expiring, 3);
        let users: HashSet<&str> = s.iter().map(|v| v.user_id.as_str()).collect();
        assert_eq!(users.len(), 6);
        let files: Vec<_> = s.iter().flat_map(|v| v.files.iter()).collect();
        let failed = files.iter().filter(|f| f.status == "FAILED").count();
        let share = failed as f64 / files.len() as f64;
        assert!((0.05..0.16).contains(&share), "{failed}/{}", files.len());
        // The same seed gives the same ids.
        let mut again = demo();
        again.populate(&mut StdRng::seed_from_u64(1));
        let ids = |d: &DemoWorkspace| -> Vec<String> {
            d.ctl.sessions().into_iter().map(|v| v.id).collect()
        };
        assert_eq!(ids(&d)[..HISTORY + 8], ids(&again)[..HISTORY + 8]);
    }

    #[test]
    fn steps_upload_close_and_respect_the_limit() {
        let mut rng = StdRng::seed_from_u64(5);
        let mut d = demo();
        d.populate(&mut rng);
        let files =
            |d: &DemoWorkspace| -> usize { d.ctl.sessions().iter().map(|s| s.files.len()).sum() };
        let before = files(&d);
        let closed_before = d
            .ctl
            .sessions()
            .iter()
            .filter(|s| s.status == CLOSED)
            .count();
        for _ in 0..2000 {
            d.step(TICK, &mut rng);
            assert!(open_per_user(&d) <= d.ctl.spec().max_open_per_user - HEADROOM);
        }
        assert!(files(&d) > before);
        let closed = d
            .ctl
            .sessions()
            .iter()
            .filter(|s| s.status == CLOSED)
            .count();
        assert!(closed > closed_before + 50, "{closed_before} -> {closed}");
        assert!(!d.uploads.is_empty() || d.until_spawn <= secs(16));
    }
}
