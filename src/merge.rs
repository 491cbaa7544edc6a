//! Merge: what `--mode merge` adds to a run, between the reducers and the writers.
//!
//! Takes the reducers' write jobs (one list per reducer, a job per property it holds) and a
//! listing of the stored dataset; gives one job per property, owned by the lowest reducer
//! that holds it, with every reducer's rows of the property and the partition's stored files.
//! The job's write ([`crate::reduce::Job::write`]) then merges them all as sorted streams.
//!
//! ```text
//!  reducer 0: [p3, p1]  ─┐                           owner 0: [p3 (r0, r2, stored), p1 (r0, stored)]
//!  reducer 1: [p2]       ├─ gather ─► a job per ─►    owner 1: [p2 (r1, stored)]
//!  reducer 2: [p3]      ─┘  property                 owner 2: []
//! ```
//!
//! Why one job per property, not one per reducer: a property's stored files were written
//! under an earlier plan, so which reducer each stored row belongs to now is known only by
//! reading it. One job reads each stored file once and writes the property as one sorted
//! stream, which also keeps a merged partition to one file (or a few past the target size).
//!
//! Deleted objects (`--delete-objects`, [`read_delete_ids`], and the input's deletion,
//! privacy-deletion and merge webhook events, [`deleted_objects`]) are dropped from every
//! partition: a stored partition the input does not touch is rewritten too when its files'
//! statistics say it may hold one of them ([`crate::dataset::StoredFile::may_hold`]), as a
//! job with stored files only. [`arrange`] does all of this for a run.
//!
//! Invariants: every job given comes back, in exactly one gathered job; the result depends
//! only on the jobs and the listing, not on the order threads finished.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::explode::{ObjectChange, ObjectEvent, ObjectType};
use crate::layout::{PROPERTY_COLUMN, property_dir};
use crate::reduce::Job;
use crate::route::PropertyTable;
use crate::store::{Folder, Location, Stores};

/// A merge's write jobs from the reducers' (`jobs[r]`: reducer `r`'s, in its order): one job
/// per property, with its stored partition under `partition` in `folder` merged in, and a
/// stored-only job for each untouched partition that may hold one of `deleted` (sorted).
/// `table` names the properties (names are interned as the mappers meet them, so this runs
/// once every row is routed) and routes the partitions only deletes touch.
/// `partial` are the `(property, object)` histories an upsert must not replace (a version of
/// them was rejected).
pub fn arrange(
    folder: &dyn Folder,
    partition: Option<&str>,
    deleted: &Arc<[i64]>,
    partial: &[(u32, i64)],
    table: &PropertyTable,
    jobs: Vec<Vec<Job>>,
) -> Result<Vec<Vec<Job>>> {
    let stored = stored_partitions(folder, partition)?;
    let names = table.names();
    let touched: std::collections::BTreeSet<String> = jobs
        .iter()
        .flatten()
        .map(|job| property_dir(&names[job.property as usize]))
        .collect();
    let extra = holding_deleted(folder, deleted, table, &stored, &touched)?;
    // Again: the partitions only deletes touch were interned since.
    let names = table.names();
    let gathered = gather(
        jobs,
        |p| {
            stored
                .get(&property_dir(&names[p as usize]))
                .cloned()
                .unwrap_or_default()
        },
        &extra,
    );
    let mut partial = partial.to_vec();
    partial.sort_unstable();
    let kept = |property: u32| -> Vec<i64> {
        let from = partial.partition_point(|&(p, _)| p < property);
        let to = partial.partition_point(|&(p, _)| p <= property);
        partial[from..to].iter().map(|&(_, o)| o).collect()
    };
    Ok(gathered
        .into_iter()
        .map(|list| {
            list.into_iter()
                .map(|job| {
                    let keep = kept(job.property);
                    job.with_deleted(deleted.clone()).keep_stored(&keep)
                })
                .collect()
        })
        .collect())
}

/// Refuses deletion, restore and merge events that name objects of more than one type:
/// object ids are unique only within a type, so a company's deletion applied to a dataset of
/// contacts would delete the contact with the same id.
pub fn check_event_types<'e>(events: impl IntoIterator<Item = &'e ObjectEvent>) -> Result<()> {
    let types: std::collections::BTreeSet<ObjectType> = events
        .into_iter()
        .map(|e| e.object_type)
        .filter(|&t| t != ObjectType::Unknown)
        .collect();
    if types.len() > 1 {
        let names: Vec<&str> = types.iter().map(|t| t.name()).collect();
        return Err(Error::Input {
            path: "the input's webhook events".into(),
            reason: format!(
                "they delete or restore objects of several types ({}): ids are unique only \
                 within a type, and a dataset holds one; give each type's events to its own \
                 dataset (split them by subscriptionType)",
                names.join(", ")
            ),
        });
    }
    Ok(())
}

/// The objects a merge deletes, sorted, without repeats: those `listed` (a delete file), and
/// those whose last deletion or restore `events` (the input's webhook events, in any order)
/// is a deletion. Ties at one moment go to the restore, which can only follow its deletion.
pub fn deleted_objects<'e>(
    listed: &[i64],
    events: impl IntoIterator<Item = &'e ObjectEvent>,
) -> Vec<i64> {
    let mut events: Vec<ObjectEvent> = events.into_iter().copied().collect();
    ObjectEvent::keep_last(&mut events);
    let mut ids = listed.to_vec();
    ids.extend(
        events
            .iter()
            .filter(|e| e.change == ObjectChange::Deleted)
            .map(|e| e.object_id),
    );
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The stored partitions not `touched` that may hold a row of one of `deleted` (by their
/// files' statistics; footers read in parallel), as `(property id, owner)` for [`gather`].
/// The owner is the first reducer of the property's route, where a new row of it would go.
fn holding_deleted(
    folder: &dyn Folder,
    deleted: &[i64],
    table: &PropertyTable,
    stored: &BTreeMap<String, Vec<(String, u64)>>,
    touched: &std::collections::BTreeSet<String>,
) -> Result<Vec<(u32, usize)>> {
    if deleted.is_empty() {
        return Ok(Vec::new());
    }
    let files: Vec<(&str, &str, u64)> = stored
        .iter()
        .filter(|(dir, _)| !touched.contains(*dir))
        .flat_map(|(dir, files)| {
            files
                .iter()
                .map(move |(rel, size)| (dir.as_str(), rel.as_str(), *size))
        })
        .collect();
    let holds = crate::par::par_map(&files, folder.parallel_reads(), |&(_, rel, size)| {
        let name = std::path::PathBuf::from(folder.name(rel));
        Ok(crate::dataset::StoredFile::open(folder.open(rel, size)?, &name)?.may_hold(deleted))
    });
    let mut dirs: Vec<&str> = Vec::new();
    for (&(dir, _, _), holds) in files.iter().zip(holds) {
        if holds? && dirs.last() != Some(&dir) {
            dirs.push(dir);
        }
    }
    let mut out = Vec::with_capacity(dirs.len());
    for dir in dirs {
        let value = dir.split_once('=').map_or("", |(_, v)| v);
        let name = crate::layout::unescape_partition_value(value).ok_or_else(|| Error::Input {
            path: folder.name(dir).into(),
            reason: "is not a valid escaped partition folder: the rows of deleted objects in it \
                     cannot be removed"
                .into(),
        })?;
        let owner = table.plan().route(&name).reducers().start as usize;
        out.push((table.intern(&name), owner));
    }
    Ok(out)
}

/// The data files of each stored partition under `partition` (a Hive prefix, or the
/// dataset's top), keyed by the partition's folder name (`property_name=…`), each with its
/// path in `folder` and size. Folders and files whose names start with `_` or `.` are not
/// data, as for any Hive reader; a folder inside a partition is an error, since a merge
/// would replace it without reading it.
pub fn stored_partitions(
    folder: &dyn Folder,
    partition: Option<&str>,
) -> Result<BTreeMap<String, Vec<(String, u64)>>> {
    let under = partition.map(|p| format!("{p}/")).unwrap_or_default();
    let mut out: BTreeMap<String, Vec<(String, u64)>> = BTreeMap::new();
    for (rel, size) in folder.list(&under)? {
        let Some(inside) = rel.strip_prefix(&under) else {
            continue;
        };
        let mut parts = inside.split('/');
        let (Some(dir), Some(name)) = (parts.next(), parts.next()) else {
            continue;
        };
        let is_partition = dir
            .strip_prefix(PROPERTY_COLUMN)
            .is_some_and(|v| v.starts_with('='));
        if !is_partition || name.starts_with(['_', '.']) {
            continue;
        }
        if parts.next().is_some() {
            return Err(Error::Input {
                path: folder.name(&format!("{under}{dir}/{name}")).into(),
                reason: "is a folder inside a partition; a merge reads only the files directly \
                         in a partition and would replace it: move it out, or rewrite the \
                         partition with --mode overwrite"
                    .into(),
            });
        }
        out.entry(dir.to_string()).or_default().push((rel, size));
    }
    Ok(out)
}

/// Gathers the reducers' jobs (`jobs[r]`: reducer `r`'s, in its order) into one job per
/// property, given to the lowest reducer holding it at the place of its own job there, with
/// `stored(property)` (the partition's stored files) merged in. Each of `extra`, a
/// `(property, owner)` that no reducer holds, becomes a job of its stored files alone, last
/// in its owner's list.
pub fn gather(
    jobs: Vec<Vec<Job>>,
    mut stored: impl FnMut(u32) -> Vec<(String, u64)>,
    extra: &[(u32, usize)],
) -> Vec<Vec<Job>> {
    // Per property: its owner, its place in the owner's list, its jobs.
    let mut by_property: BTreeMap<u32, (usize, usize, Vec<Job>)> = BTreeMap::new();
    let reducers = jobs.len();
    for (r, list) in jobs.into_iter().enumerate() {
        for (place, job) in list.into_iter().enumerate() {
            by_property
                .entry(job.property)
                .or_insert_with(|| (r, place, Vec::new()))
                .2
                .push(job);
        }
    }
    for &(property, owner) in extra {
        by_property.entry(property).or_insert_with(|| {
            (
                owner.min(reducers.saturating_sub(1)),
                usize::MAX,
                Vec::new(),
            )
        });
    }
    let mut placed: Vec<Vec<(usize, Job)>> = (0..reducers).map(|_| Vec::new()).collect();
    for (property, (owner, place, parts)) in by_property {
        let job = Job::gather(property, parts).with_stored(stored(property));
        placed[owner].push((place, job));
    }
    placed
        .into_iter()
        .map(|mut list| {
            // Stable: stored-only jobs (all at `usize::MAX`) keep their property order.
            list.sort_by_key(|(place, _)| *place);
            list.into_iter().map(|(_, job)| job).collect()
        })
        .collect()
}

/// The object ids of a delete file (`--delete-objects`): one per line, sorted, without
/// repeats. Blank lines and lines starting with `#` are skipped; anything else that is not a
/// whole number is an error naming the file and line.
pub fn parse_delete_ids(bytes: &[u8], name: &str) -> Result<Vec<i64>> {
    let mut ids = Vec::new();
    for (n, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_start_matches('\u{feff}').trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let id = text.parse::<i64>().map_err(|_| Error::Input {
            path: name.into(),
            reason: format!(
                "line {}: \"{}\" is not an object id (one whole number per line)",
                n + 1,
                crate::units::clip(text, 40)
            ),
        })?;
        ids.push(id);
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Reads and parses the delete file at `location` ([`parse_delete_ids`]).
pub fn read_delete_ids(location: &Location, stores: &Stores) -> Result<Vec<i64>> {
    let (parent, file) = match location {
        Location::Local(path) => {
            let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
            return parse_delete_ids(&bytes, &path.display().to_string());
        }
        Location::S3(url) => {
            let key = url.key.trim_end_matches('/');
            let (dir, file) = key.rsplit_once('/').unwrap_or(("", key));
            (Location::S3(url.at(dir)), file.to_string())
        }
    };
    let folder = crate::store::folder(&parent, stores)?;
    let name = folder.name(&file);
    let bytes = folder.read(&file)?.ok_or_else(|| {
        Error::io(
            &name,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such object"),
        )
    })?;
    parse_delete_ids(&bytes, &name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{Columns, Row, Rows};
    use crate::reduce::{Existing, Reducer, sort_dedupe};
    use crate::sink::{PropertyWriter, SinkOptions};
    use crate::store::local::LocalDataset;

    fn next(seed: &mut u64) -> u64 {
        *seed = planner::fmix64(seed.wrapping_add(0x9e37_79b9_7f4a_7c15));
        *seed
    }

    const VALUES: [&[u8]; 3] = [b"a", b"b", b"c"];

    fn random_row(seed: &mut u64, objects: u64) -> Row<'static> {
        let x = next(seed);
        Row {
            object_id: (x % objects) as i64,
            timestamp: ((x >> 16) % 5) as i64,
            value: Some(VALUES[((x >> 32) % 3) as usize]),
            source_type: (x >> 40).is_multiple_of(2).then_some(&b"CRM_UI"[..]),
            source_id: None,
            source_label: None,
            updated_by_user_id: None,
        }
    }

    /// Stored files, new rows from several reducers (spilled and not) and deleted objects
    /// merge into exactly what sorting and de-duplicating everything at once, less the
    /// deleted objects, gives; and the counts add up.
    #[test]
    fn a_merge_equals_sorting_everything_at_once() {
        for case in 0..6u64 {
            let mut seed = case;
            let dir = tempfile::tempdir().unwrap();
            let options = SinkOptions {
                row_group_rows: 97,
                ..SinkOptions::default()
            };
            let mut all = Columns::default();
            // Stored: two files (an earlier plan's two reducers), each sorted and free of
            // duplicates; files of an appended run may repeat rows of each other.
            let partition = dir.path().join("property_name=p");
            let mut stored_rows = 0;
            for f in 0..2 {
                let mut rows = Columns::default();
                for _ in 0..(300 + case * 50) {
                    let row = random_row(&mut seed, 120);
                    rows.push(&row);
                }
                let (order, _) = sort_dedupe(&rows);
                stored_rows += order.len() as u64;
                for &i in &order {
                    all.push(&rows.row(i as usize));
                }
                let mut w = PropertyWriter::new(&partition, &format!("part-old-r{f}"), &options);
                w.write(&rows, &order).unwrap();
                w.finish().unwrap();
            }
            // New rows: three reducers, one with a budget small enough to spill.
            let mut jobs = Vec::new();
            let (mut received, mut spilled_duplicates) = (0, 0);
            for r in 0..3 {
                let budget = if r == 1 { 1 } else { 1 << 30 };
                let mut reducer = Reducer::new(budget, dir.path().join(format!("spill{r}")));
                for _ in 0..4 {
                    let mut batch = Rows::default();
                    for _ in 0..(40 + case * 10) {
                        let row = random_row(&mut seed, 150);
                        batch.push(0, &row);
                        all.push(&row);
                        received += 1;
                    }
                    reducer.add(&batch).unwrap();
                }
                let (list, spilled) = reducer.into_jobs(vec![0]);
                spilled_duplicates += spilled.duplicates;
                jobs.push(list);
            }
            jobs.push(Vec::new());
            let folder = LocalDataset::new(dir.path());
            let stored = stored_partitions(&folder, None).unwrap();
            assert_eq!(stored["property_name=p"].len(), 2);
            let mut gathered = gather(jobs, |_| stored["property_name=p"].clone(), &[]);
            assert_eq!(
                gathered.iter().map(Vec::len).collect::<Vec<_>>(),
                [1, 0, 0, 0]
            );
            let deleted: Vec<i64> = (0..160).filter(|i| i % (7 + case as i64) == 3).collect();

            let out = dir.path().join("out");
            let mut writer = PropertyWriter::new(&out, "part-new-r0", &options);
            let existing = Existing {
                folder: Some(&folder),
            };
            let job = gathered[0]
                .pop()
                .unwrap()
                .with_deleted(deleted.clone().into());
            let merged = job.write(&mut writer, &existing).unwrap();
            writer.finish().unwrap();

            let mut back = Columns::default();
            for entry in std::fs::read_dir(&out).unwrap() {
                let rows = crate::dataset::read_rows(&entry.unwrap().path()).unwrap();
                for i in 0..rows.len() {
                    back.push(&rows.row(i));
                }
            }
            let (order, _) = sort_dedupe(&all);
            let mut want = Columns::default();
            let mut want_deleted = 0;
            let mut found = std::collections::BTreeSet::new();
            for &i in &order {
                let row = all.row(i as usize);
                match deleted.binary_search(&row.object_id) {
                    Ok(k) => {
                        found.insert(k as u32);
                    }
                    Err(_) => want.push(&row),
                }
            }
            for i in 0..all.len() {
                want_deleted += u64::from(deleted.binary_search(&all.object_id[i]).is_ok());
            }
            assert_eq!(back, want, "case {case}");
            assert_eq!(merged.stored_rows, stored_rows);
            let found_now: Vec<u32> = (0..deleted.len() as u32)
                .filter(|&k| {
                    merged
                        .deleted_found
                        .get(k as usize / 64)
                        .is_some_and(|w| w >> (k % 64) & 1 == 1)
                })
                .collect();
            assert_eq!(found_now, found.iter().copied().collect::<Vec<_>>());
            assert_eq!(merged.objects_deleted(), found.len() as u64);
            // Every row read or received is written, a duplicate or deleted (a deleted row
            // repeated counts once as deleted, once as a duplicate, or the other way).
            assert_eq!(
                back.len() as u64 + merged.duplicates + spilled_duplicates + merged.deleted_rows,
                received + stored_rows,
                "case {case}"
            );
            assert!(merged.deleted_rows <= want_deleted);
        }
    }

    /// An upsert: the stored rows of the objects whose history the new rows carry go, the
    /// new rows take their place; stored rows of other objects, and new rows that are single
    /// changes (no history pair), merge as in a merge.
    #[test]
    fn an_upsert_replaces_the_stored_histories_the_input_carries() {
        for case in 0..4u64 {
            let mut seed = 100 + case;
            let dir = tempfile::tempdir().unwrap();
            let options = SinkOptions {
                row_group_rows: 61,
                ..SinkOptions::default()
            };
            let partition = dir.path().join("property_name=p");
            let mut stored = Columns::default();
            let mut rows = Columns::default();
            for _ in 0..400 {
                rows.push(&random_row(&mut seed, 100));
            }
            let (order, _) = sort_dedupe(&rows);
            for &i in &order {
                stored.push(&rows.row(i as usize));
            }
            let mut w = PropertyWriter::new(&partition, "part-old-r0", &options);
            w.write(&rows, &order).unwrap();
            w.finish().unwrap();

            // New rows over two reducers; objects divisible by 3 come as histories.
            let mut new = Columns::default();
            let mut histories = std::collections::BTreeSet::new();
            let mut jobs = Vec::new();
            let mut spilled_duplicates = 0;
            for r in 0..2 {
                let budget = if r == 1 && case % 2 == 1 { 1 } else { 1 << 30 };
                let mut reducer = Reducer::new(budget, dir.path().join(format!("spill{r}")));
                for _ in 0..3 {
                    let mut batch = Rows::default();
                    for _ in 0..(30 + case * 7) {
                        let row = random_row(&mut seed, 130);
                        if row.object_id % 3 == 0 {
                            batch.histories.push((0, row.object_id));
                            histories.insert(row.object_id);
                        }
                        batch.push(0, &row);
                        new.push(&row);
                    }
                    reducer.add(&batch).unwrap();
                }
                let (list, spilled) = reducer.into_jobs(vec![0]);
                spilled_duplicates += spilled.duplicates;
                jobs.push(list);
            }
            let folder = LocalDataset::new(dir.path());
            let listed = stored_partitions(&folder, None).unwrap();
            let mut gathered = gather(jobs, |_| listed["property_name=p"].clone(), &[]);
            // One history came with a version rejected (Parquet input): its stored rows stay.
            let partial = *histories.iter().next().unwrap();
            histories.remove(&partial);
            let job = gathered[0].pop().unwrap().keep_stored(&[partial]);
            let out = dir.path().join("out");
            let mut writer = PropertyWriter::new(&out, "part-new-r0", &options);
            let existing = Existing {
                folder: Some(&folder),
            };
            let merged = job.write(&mut writer, &existing).unwrap();
            writer.finish().unwrap();

            let mut all = new.clone();
            let mut replaced = 0;
            for i in 0..stored.len() {
                if histories.contains(&stored.object_id[i]) {
                    replaced += 1;
                } else {
                    all.push(&stored.row(i));
                }
            }
            let (order, _) = sort_dedupe(&all);
            let mut want = Columns::default();
            for &i in &order {
                want.push(&all.row(i as usize));
            }
            let mut back = Columns::default();
            for entry in std::fs::read_dir(&out).unwrap() {
                let rows = crate::dataset::read_rows(&entry.unwrap().path()).unwrap();
                for i in 0..rows.len() {
                    back.push(&rows.row(i));
                }
            }
            assert_eq!(back, want, "case {case}");
            // A stored row equal to a new one may count as a duplicate instead.
            assert!(merged.replaced_rows <= replaced && merged.replaced_rows > 0);
            assert_eq!(merged.stored_rows, stored.len() as u64);
            assert_eq!(
                back.len() as u64 + merged.duplicates + spilled_duplicates + merged.replaced_rows,
                new.len() as u64 + stored.len() as u64,
                "case {case}"
            );
        }
    }
}

#[cfg(test)]
mod delete_file_tests {
    use super::*;

    #[test]
    fn a_delete_file_is_ids_one_per_line() {
        let ids = parse_delete_ids(
            b"\xef\xbb\xbf# deleted today\n42\n 7 \r\n\n42\n-3\n",
            "d.txt",
        );
        assert_eq!(ids.unwrap(), [-3, 7, 42]);
        let err = parse_delete_ids(b"1\n2\nabc\n", "d.txt")
            .unwrap_err()
            .to_string();
        assert!(err.contains("d.txt") && err.contains("line 3"), "{err}");
        let err = parse_delete_ids(b"1.5\n", "d.txt").unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
    }
    /// The last event of an object decides; a restore at the moment of its deletion wins;
    /// a listed id is deleted whatever the events say.
    #[test]
    fn an_objects_last_event_decides_whether_it_is_deleted() {
        use ObjectChange::{Deleted, Restored};
        let e = |object_id, occurred_at, change| ObjectEvent {
            object_id,
            occurred_at,
            change,
            object_type: ObjectType::Contact,
        };
        let events = [
            e(1, 20, Restored),
            e(1, 10, Deleted),
            e(2, 10, Restored),
            e(2, 20, Deleted),
            e(3, 5, Restored),
            e(3, 5, Deleted),
            e(4, 7, Deleted),
            e(4, 7, Deleted),
            e(5, i64::MIN, Deleted),
            e(6, 9, Restored),
        ];
        assert_eq!(deleted_objects(&[], &events), [2, 4, 5]);
        assert_eq!(deleted_objects(&[6, 1, 9], &events), [1, 2, 4, 5, 6, 9]);
        assert_eq!(deleted_objects(&[], &[]), Vec::<i64>::new());
        // One type, or one and unknown (generic events without objectTypeId): fine.
        let mut mixed = events.to_vec();
        mixed[0].object_type = ObjectType::Unknown;
        check_event_types(&mixed).unwrap();
        mixed[1].object_type = ObjectType::Company;
        let err = check_event_types(&mixed).unwrap_err().to_string();
        assert!(err.contains("contact, company"), "{err}");
    }
}
