//! The generated objects' lives over a base dump and its increments.
//!
//! Step 0 is the base dump: objects `0..objects`. Each later step `t` (an increment) changes
//! about `change_rate` of the live objects (one to three properties gain one or two newer
//! versions), deletes about `delete_rate` of them, and brings `new_per_step` new objects.
//! An object's histories as of any step are a pure function of (seed, object, step), so any
//! dump (base, increment, final state) can be written in any order and in parallel.
//!
//! Versions added by increments carry no source label or user: a webhook event has neither,
//! and the same version must read the same from an event and from a full record.

use super::{Model, NOW_MS, Rng, SOURCES, Version, object_id, value, versions};

const DAY_MS: i64 = 86_400_000;

/// Properties an increment's change picks from: the busiest, as in real portals.
const CHANGED_PROPERTIES: usize = 60;

/// What happens to which object at which step.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timeline {
    pub(crate) seed: u64,
    /// Objects of the base dump.
    pub(crate) objects: u64,
    pub(crate) new_per_step: u64,
    pub(crate) change_rate: f64,
    pub(crate) delete_rate: f64,
}

/// How an increment carries an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// Untouched (or not alive).
    None,
    /// New at this step, or changed: its full record, histories as of the step.
    Record,
    /// Changed, and sent as webhook property-change events (one per new version).
    Events,
    /// Deleted at this step.
    Deleted,
}

impl Timeline {
    /// A base dump and nothing else.
    pub(crate) fn base(seed: u64, objects: u64) -> Self {
        Timeline {
            seed,
            objects,
            new_per_step: 0,
            change_rate: 0.0,
            delete_rate: 0.0,
        }
    }

    /// Objects that exist by the end of step `step` (alive or not), as indices.
    pub(crate) fn known(&self, step: u32) -> u64 {
        self.objects + self.new_per_step * u64::from(step)
    }

    /// The step object `i` is created at.
    pub(crate) fn born(&self, i: u64) -> u32 {
        if i < self.objects || self.new_per_step == 0 {
            0
        } else {
            1 + ((i - self.objects) / self.new_per_step) as u32
        }
    }

    fn roll(&self, i: u64, step: u32, salt: u64) -> f64 {
        let x = planner::fmix64(
            self.seed ^ planner::fmix64(i.wrapping_add(salt)) ^ (u64::from(step) << 40),
        );
        (x >> 11) as f64 / (1u64 << 53) as f64
    }

    fn deleted_at(&self, i: u64, step: u32) -> bool {
        step > self.born(i) && self.roll(i, step, 0xde1e7e) < self.delete_rate
    }

    /// Whether object `i` exists after step `step`.
    pub(crate) fn alive(&self, i: u64, step: u32) -> bool {
        let born = self.born(i);
        born <= step && !(born + 1..=step).any(|t| self.deleted_at(i, t))
    }

    /// What step `step` does to object `i`.
    pub(crate) fn change(&self, i: u64, step: u32) -> Change {
        let born = self.born(i);
        if step == 0 || born > step {
            return Change::None;
        }
        if born == step {
            return Change::Record;
        }
        if !self.alive(i, step - 1) {
            return Change::None;
        }
        if self.deleted_at(i, step) {
            return Change::Deleted;
        }
        if self.roll(i, step, 0xc4a9) >= self.change_rate {
            return Change::None;
        }
        // A third of the changes come as webhook events, the rest as re-exported records.
        if self.roll(i, step, 0xe7e) < 1.0 / 3.0 {
            Change::Events
        } else {
            Change::Record
        }
    }

    /// The versions step `step` adds to object `i` (it changed then): `(property, version)`,
    /// properties distinct and ascending, newest version first within one.
    pub(crate) fn added(&self, model: &Model, i: u64, step: u32, out: &mut Vec<(usize, Version)>) {
        let mut rng = Rng::for_object(self.seed ^ (u64::from(step) << 48) ^ 0xadd, i);
        let id = object_id(i);
        let pool = model.names.len().min(CHANGED_PROPERTIES);
        let mut picked: Vec<usize> = (0..1 + rng.below(3))
            .map(|_| {
                let u = rng.unit();
                ((u * u) * pool as f64) as usize
            })
            .collect();
        picked.sort_unstable();
        picked.dedup();
        let start = out.len();
        for p in picked {
            let newest = NOW_MS + i64::from(step) * DAY_MS + rng.below(DAY_MS as u64 / 2) as i64;
            for k in 0..1 + rng.below(2) as i64 {
                out.push((
                    p,
                    Version {
                        timestamp: newest - k * 60_000,
                        value: value(model.kinds[p], &mut rng, id),
                        source_type: Some(*rng.pick(SOURCES)),
                        source_id: (rng.below(2) == 0)
                            .then(|| format!("userId:{}", 1000 + rng.below(40))),
                        source_label: None,
                        updated_by: None,
                    },
                ));
            }
        }
        debug_assert!(out[start..].windows(2).all(|w| w[0].0 <= w[1].0));
    }

    /// Calls `each(property, versions newest first)` for every property object `i` has as
    /// of step `step`, in the model's order. `base` and `extra` are reused buffers.
    pub(crate) fn histories<E>(
        &self,
        model: &Model,
        i: u64,
        step: u32,
        buffers: &mut Buffers,
        mut each: impl FnMut(usize, &[Version]) -> Result<(), E>,
    ) -> Result<(), E> {
        let Buffers {
            base,
            extra,
            merged,
        } = buffers;
        extra.clear();
        // Newest step first, so that each property's added versions stay newest first.
        for t in (self.born(i) + 1..=step).rev() {
            if matches!(self.change(i, t), Change::Record | Change::Events) {
                let from = extra.len();
                self.added(model, i, t, extra);
                extra[from..].sort_by_key(|(p, _)| *p);
            }
        }
        // Stable: within a property, later steps (pushed first) stay first.
        extra.sort_by_key(|(p, _)| *p);
        let mut rng = Rng::for_object(self.seed, i);
        let id = object_id(i);
        let mut next = 0;
        for p in 0..model.names.len() {
            let has = versions(model, p, &mut rng, id, base);
            let from = next;
            while next < extra.len() && extra[next].0 == p {
                next += 1;
            }
            if from == next {
                if has {
                    each(p, base)?;
                }
                continue;
            }
            merged.clear();
            merged.extend(extra[from..next].iter().map(|(_, v)| v.clone()));
            if has {
                merged.extend(base.iter().cloned());
            }
            each(p, merged)?;
        }
        Ok(())
    }
}

/// Buffers [`Timeline::histories`] reuses from object to object.
#[derive(Debug, Default)]
pub(crate) struct Buffers {
    base: Vec<Version>,
    extra: Vec<(usize, Version)>,
    merged: Vec<Version>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeline() -> Timeline {
        Timeline {
            seed: 3,
            objects: 2_000,
            new_per_step: 10,
            change_rate: 0.05,
            delete_rate: 0.01,
        }
    }

    #[test]
    fn lives_follow_the_rates() {
        let t = timeline();
        let mut counts = [0u64; 4];
        for i in 0..t.known(3) {
            for step in 1..=3 {
                counts[t.change(i, step) as usize] += 1;
            }
        }
        let [_, records, events, deleted] = counts;
        // 3 steps × (~100 changed + 10 new) and ~20 deleted each.
        assert!((250..420).contains(&(records + events)), "{counts:?}");
        assert!((30..100).contains(&deleted), "{counts:?}");
        assert!(events > 30 && records > events, "{counts:?}");
        // Deleted once, gone after; new objects appear at their step.
        for i in 0..t.known(3) {
            for step in 1..=3 {
                if t.change(i, step) == Change::Deleted {
                    assert!(t.alive(i, step - 1) && !t.alive(i, step));
                    assert!((step + 1..=3).all(|s| t.change(i, s) == Change::None));
                }
            }
        }
        assert_eq!(t.born(2_000), 1);
        assert_eq!(t.born(2_029), 3);
        assert!(!t.alive(2_015, 1) && t.change(2_015, 2) == Change::Record);
    }

    #[test]
    fn a_later_step_only_adds_newer_versions() {
        let t = timeline();
        let model = Model::new(80, None);
        let mut b = Buffers::default();
        for i in (0..2_000).step_by(37) {
            let mut before: Vec<(usize, Vec<i64>)> = Vec::new();
            t.histories(&model, i, 1, &mut b, |p, vs| {
                before.push((p, vs.iter().map(|v| v.timestamp).collect()));
                Ok::<(), ()>(())
            })
            .unwrap();
            let mut after: Vec<(usize, Vec<i64>)> = Vec::new();
            t.histories(&model, i, 3, &mut b, |p, vs| {
                assert!(vs.windows(2).all(|w| w[0].timestamp > w[1].timestamp));
                after.push((p, vs.iter().map(|v| v.timestamp).collect()));
                Ok::<(), ()>(())
            })
            .unwrap();
            // Every earlier history is the tail of the later one.
            for (p, old) in &before {
                let new = &after.iter().find(|(q, _)| q == p).unwrap().1;
                assert!(new.ends_with(old), "object {i} property {p}");
            }
        }
    }
}
