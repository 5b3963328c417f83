//! The window's job queue: what the user asked for and the engine has not been given yet, in
//! the order the user wants it run.
//!
//! The waiting list lives here, in the window, and the engine is handed one job at a time,
//! when it has nothing else to do. The other way, a reorderable queue inside the engine, would
//! need the engine thread and the window to share and lock the list, and the command line
//! (which has no use for reordering) would carry it too. Kept here, reordering and removing
//! are plain edits of a `Vec` on the UI thread; a removed job was never sent, so it cannot
//! run; and the engine stays the simple in-order worker both front ends use. What it costs is
//! the moment between one job's end and the next one's start: the engine asks for a repaint
//! with every event, so the next job goes out on the following frame, and the engine keeps
//! its loaded models between jobs either way.
//!
//! A batch is one entry: its images run one after another with seeds `seed`, `seed + 1`, …;
//! each is its own engine job, so each lands in the history with its own seed. Cancelling
//! or failing one image ends the rest of its batch (they would run the same settings).

use std::collections::VecDeque;

use crate::pipelines::Job;

/// The most images one job may make.
pub const MAX_BATCH: u32 = 16;

/// Identifies a waiting entry for the queue list's buttons (the engine's ids are given only
/// when a job is sent).
pub type EntryKey = u64;

/// One thing the user asked for: a job, or the images of a batch still to make.
#[derive(Debug)]
pub struct QueueEntry {
    pub key: EntryKey,
    /// "Generate: a red fox…", for the queue list.
    pub title: String,
    /// For edits: the history entry edited, kept as each result's parent.
    pub parent: Option<i64>,
    /// A Hi-DiT class job (its errors are worded with the class controls' labels).
    pub class_job: bool,
    /// The engine jobs still to send, first first.
    requests: VecDeque<Job>,
    /// How many images the entry makes in all.
    pub total: usize,
}

impl QueueEntry {
    /// How many images are still to be made.
    pub fn remaining(&self) -> usize {
        self.requests.len()
    }

    /// The title with the batch position of the image about to run ("· 2 of 3").
    fn next_title(&self) -> String {
        if self.total > 1 {
            let index = self.total - self.requests.len() + 1;
            format!("{} · {index} of {}", self.title, self.total)
        } else {
            self.title.clone()
        }
    }
}

/// A job to hand to the engine now, with what the window keeps about it.
pub struct NextJob {
    pub request: Job,
    pub title: String,
    pub parent: Option<i64>,
    pub class_job: bool,
}

/// The waiting entries, and the rest of the batch whose image is running.
#[derive(Debug, Default)]
pub struct JobQueue {
    waiting: Vec<QueueEntry>,
    /// The entry the running job came from while it has more images to make.
    current: Option<QueueEntry>,
    next_key: EntryKey,
}

impl JobQueue {
    /// Adds a job (one request) or a batch (several) at the end.
    pub fn push(
        &mut self,
        title: String,
        parent: Option<i64>,
        class_job: bool,
        requests: Vec<Job>,
    ) {
        if requests.is_empty() {
            return;
        }
        self.next_key += 1;
        self.waiting.push(QueueEntry {
            key: self.next_key,
            title,
            parent,
            class_job,
            total: requests.len(),
            requests: requests.into(),
        });
    }

    /// The job to run next: the running batch's next image, else the first waiting entry's.
    pub fn take_next(&mut self) -> Option<NextJob> {
        if self.current.as_ref().is_none_or(|c| c.requests.is_empty()) {
            self.current = None;
            if self.waiting.is_empty() {
                return None;
            }
            self.current = Some(self.waiting.remove(0));
        }
        let entry = self.current.as_mut()?;
        let title = entry.next_title();
        let request = entry.requests.pop_front()?;
        Some(NextJob {
            request,
            title,
            parent: entry.parent,
            class_job: entry.class_job,
        })
    }

    /// The running job ended early (cancelled or failed): the rest of its batch is dropped.
    /// Returns how many images that leaves unmade.
    pub fn end_current(&mut self) -> usize {
        self.current.take().map_or(0, |c| c.requests.len())
    }

    /// The waiting entries, first to run first.
    pub fn waiting(&self) -> &[QueueEntry] {
        &self.waiting
    }

    /// How many images the running batch has still to make after the running one.
    pub fn current_remaining(&self) -> usize {
        self.current.as_ref().map_or(0, QueueEntry::remaining)
    }

    /// Removes a waiting entry; it never reaches the engine. Returns its title.
    pub fn remove(&mut self, key: EntryKey) -> Option<String> {
        let index = self.position(key)?;
        Some(self.waiting.remove(index).title)
    }

    /// Moves a waiting entry one place earlier (`up`) or later; at either end it stays.
    pub fn move_entry(&mut self, key: EntryKey, up: bool) {
        let Some(index) = self.position(key) else {
            return;
        };
        let other = if up {
            index.checked_sub(1)
        } else {
            Some(index + 1).filter(|&i| i < self.waiting.len())
        };
        if let Some(other) = other {
            self.waiting.swap(index, other);
        }
    }

    /// Forgets every waiting entry and the running batch's rest.
    pub fn clear(&mut self) {
        self.waiting.clear();
        self.current = None;
    }

    fn position(&self, key: EntryKey) -> Option<usize> {
        self.waiting.iter().position(|e| e.key == key)
    }
}

/// The seeds of a batch of `count` images from `seed`: consecutive, wrapping at the top.
pub fn batch_seeds(seed: u64, count: u32) -> impl Iterator<Item = u64> {
    (0..u64::from(count.clamp(1, MAX_BATCH))).map(move |i| seed.wrapping_add(i))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::hidit::Mode;
    use crate::pipelines::hidit::{HiditFiles, HiditSettings};
    use crate::pipelines::{HiditJob, Job};
    use crate::settings::DeviceChoice;

    fn job(seed: u64) -> Job {
        Job::Hidit(HiditJob {
            files: HiditFiles {
                model: "m".into(),
                checkpoint: None,
                vae: None,
                latents_stats: None,
            },
            settings: HiditSettings {
                class: 0,
                steps: 1,
                mode: Mode::Ode,
                cfg_scale: 1.0,
                guidance_low: 0.0,
                guidance_high: 1.0,
                seed,
                tau: None,
                latent_only: false,
            },
            device: DeviceChoice::Cpu,
        })
    }

    fn seed(next: &NextJob) -> u64 {
        match &next.request {
            Job::Hidit(h) => h.settings.seed,
            _ => unreachable!(),
        }
    }

    fn titles(queue: &JobQueue) -> Vec<&str> {
        queue.waiting().iter().map(|e| e.title.as_str()).collect()
    }

    #[test]
    fn entries_run_in_the_order_left_after_moves_and_removals() {
        let mut queue = JobQueue::default();
        for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
            queue.push(name.into(), None, true, vec![job(i as u64)]);
        }
        let keys: Vec<_> = queue.waiting().iter().map(|e| e.key).collect();
        queue.move_entry(keys[2], true);
        assert_eq!(titles(&queue), ["a", "c", "b"]);
        // At the ends nothing moves.
        queue.move_entry(keys[0], true);
        queue.move_entry(keys[1], false);
        assert_eq!(titles(&queue), ["a", "c", "b"]);
        assert_eq!(queue.remove(keys[0]).as_deref(), Some("a"));
        assert_eq!(queue.remove(keys[0]), None);
        let order: Vec<_> = std::iter::from_fn(|| queue.take_next().map(|n| n.title)).collect();
        assert_eq!(order, ["c", "b"]);
    }

    #[test]
    fn a_batch_runs_its_seeds_in_turn_and_ends_with_its_running_image() {
        let mut queue = JobQueue::default();
        let seeds: Vec<_> = batch_seeds(u64::MAX, 3).collect();
        assert_eq!(seeds, [u64::MAX, 0, 1]);
        queue.push(
            "batch".into(),
            None,
            false,
            seeds.iter().map(|&s| job(s)).collect(),
        );
        queue.push("after".into(), None, false, vec![job(9)]);
        let first = queue.take_next().unwrap();
        assert_eq!(
            (first.title.as_str(), seed(&first)),
            ("batch · 1 of 3", u64::MAX)
        );
        assert_eq!(queue.current_remaining(), 2);
        let second = queue.take_next().unwrap();
        assert_eq!(
            (second.title.as_str(), seed(&second)),
            ("batch · 2 of 3", 0)
        );
        // Cancelled: the third image is not made, the next entry runs.
        assert_eq!(queue.end_current(), 1);
        assert_eq!(queue.take_next().unwrap().title, "after");
        assert!(queue.take_next().is_none());
        assert_eq!(batch_seeds(5, 40).count(), MAX_BATCH as usize);
        assert_eq!(batch_seeds(5, 0).count(), 1);
    }
}
