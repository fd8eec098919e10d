//! Background activity of [`Scenario::Demo`](crate::Scenario::Demo) on the
//! S3 side, bucket [`BUCKET`] (which has a 1-day abort rule): uploads get
//! parts every few seconds, then most complete, some are aborted by their
//! client and some stall. The opening picture adds stalled uploads
//! initiated one to two days ago: the abort rule removes each at the first
//! midnight UTC after its `Initiated + 1 day` (so the oldest go at the
//! next midnight of the simulated clock). Choices come from a seeded RNG.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::{Instant, MissedTickBehavior};

use super::{S3Control, S3UploadSeed};
use crate::http::ShutdownSignal;

/// The demo bucket.
pub(crate) const BUCKET: &str = "demo-uploads";
const TICK: Duration = Duration::from_secs(2);
/// Open uploads the demo keeps at most (stalled ones included).
const MAX_OPEN: usize = 24;
const KEYS: [&str; 6] = [
    "backups/db-{n}.tar.zst",
    "media/raw/interview-{n}.mov",
    "exports/report-{n}.parquet",
    "logs/archive-{n}.gz",
    "datasets/images-{n}.zip",
    "vm/disk-{n}.qcow2",
];

#[derive(Debug)]
struct Active {
    id: String,
    parts_left: u32,
    next_part: u32,
    fate: Fate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Complete,
    Abort,
    Stall,
}

/// Runs the demo activity until shutdown.
pub(crate) async fn run(ctl: S3Control, seed: u64, shutdown: ShutdownSignal) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5335_0001);
    let mut serial = 0u32;
    populate(&ctl, &mut rng, &mut serial);
    let mut active: Vec<Active> = Vec::new();
    let mut ticker = tokio::time::interval_at(Instant::now() + TICK, TICK);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => step(&ctl, &mut rng, &mut active, &mut serial),
            () = shutdown.wait() => return,
        }
    }
}

fn users(ctl: &S3Control) -> Vec<super::S3Identity> {
    ctl.spec()
        .users
        .iter()
        .map(|u| u.identity.clone())
        .collect()
}

fn key(rng: &mut StdRng, serial: &mut u32) -> String {
    *serial += 1;
    let pattern = KEYS[rng.random_range(0..KEYS.len())];
    pattern.replace("{n}", &format!("{:04}", *serial))
}

/// Stalled uploads of the last two days.
fn populate(ctl: &S3Control, rng: &mut StdRng, serial: &mut u32) {
    let now = ctl.now();
    let who = users(ctl);
    if who.is_empty() {
        return;
    }
    for i in 0..8u64 {
        let age = Duration::from_secs(3600 * (20 + 3 * i) + rng.random_range(0..3600));
        let initiated = now - crate::clock::to_time(age);
        let mut s = S3UploadSeed::new(
            &key(rng, serial),
            who[rng.random_range(0..who.len())].clone(),
            initiated,
        );
        let n = rng.random_range(0..12u32);
        s.parts = (1..=n).map(|p| (p, 8 * 1024 * 1024)).collect();
        ctl.insert_upload(BUCKET, s);
    }
}

fn step(ctl: &S3Control, rng: &mut StdRng, active: &mut Vec<Active>, serial: &mut u32) {
    let who = users(ctl);
    if who.is_empty() {
        return;
    }
    if ctl.uploads(BUCKET).len() < MAX_OPEN && rng.random_bool(0.3) {
        let s = S3UploadSeed::new(
            &key(rng, serial),
            who[rng.random_range(0..who.len())].clone(),
            ctl.now(),
        );
        if let Some(id) = ctl.insert_upload(BUCKET, s) {
            let fate = match rng.random_range(0..10) {
                0..=5 => Fate::Complete,
                6..=7 => Fate::Abort,
                _ => Fate::Stall,
            };
            active.push(Active {
                id,
                parts_left: rng.random_range(2..20),
                next_part: 1,
                fate,
            });
        }
    }
    active.retain_mut(|a| {
        if a.parts_left == 0 {
            return match a.fate {
                Fate::Complete => {
                    ctl.complete_upload(BUCKET, &a.id);
                    false
                }
                Fate::Abort => {
                    ctl.remove_upload(BUCKET, &a.id);
                    false
                }
                // Left for the lifecycle rule.
                Fate::Stall => false,
            };
        }
        if rng.random_bool(0.7) {
            let size = if a.parts_left == 1 {
                rng.random_range(1..8 * 1024 * 1024)
            } else {
                8 * 1024 * 1024
            };
            if !ctl.put_part(BUCKET, &a.id, a.next_part, size) {
                return false; // gone (aborted by a client or lifecycle)
            }
            a.next_part += 1;
            a.parts_left -= 1;
        }
        true
    });
}
