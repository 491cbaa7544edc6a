//! Nested Parquet dumps, as a Spark job writes HubSpot exports (the field report's schema):
//!
//! ```text
//! message hubspot {
//!   required int64 vid;                              -- dealId (deals), binary id (v3)
//!   optional group properties {                      -- or, with --parquet-map:
//!     optional group <property> {                    --   optional group properties (MAP) {
//!       optional binary value (STRING);              --     repeated group key_value {
//!       optional group versions (LIST) {             --       required binary key (STRING);
//!         repeated group list {                      --       optional group value { value, versions }
//!           optional group element {
//!             optional binary value (STRING);
//!             optional int64 timestamp;
//!             [source-type, source-id, source-label, updated-by-user-id]   -- --parquet-sources
//! }}}}}}
//! ```
//!
//! Levels are written by hand through the column API: for each leaf, one definition level per
//! slot (how deep the path is defined) and one repetition level (0 starts a new object, 1 a
//! new map entry or list element, 2 a list element inside a map entry).

use std::fs::File;
use std::sync::Arc;

use parquet::basic::{Compression, ConvertedType, LogicalType, Repetition, Type as Physical};
use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::{Type, TypePtr};

use super::timeline::Buffers;
use super::{GenConfig, Model, Part, Version, as_read, object_id, read_back};
use crate::checksum::Checksum;
use crate::error::{Error, Result};

/// The version fields written, in schema order.
fn version_fields(sources: bool) -> Vec<(&'static str, Physical)> {
    let mut f = vec![
        ("value", Physical::BYTE_ARRAY),
        ("timestamp", Physical::INT64),
    ];
    if sources {
        f.extend([
            ("source-type", Physical::BYTE_ARRAY),
            ("source-id", Physical::BYTE_ARRAY),
            ("source-label", Physical::BYTE_ARRAY),
            ("updated-by-user-id", Physical::INT64),
        ]);
    }
    f
}

fn leaf(name: &str, physical: Physical, repetition: Repetition) -> TypePtr {
    let mut b = Type::primitive_type_builder(name, physical).with_repetition(repetition);
    if physical == Physical::BYTE_ARRAY {
        b = b.with_logical_type(Some(LogicalType::String));
    }
    Arc::new(b.build().expect("valid leaf"))
}

fn group(name: &str, repetition: Repetition, fields: Vec<TypePtr>) -> TypePtr {
    Arc::new(
        Type::group_type_builder(name)
            .with_repetition(repetition)
            .with_fields(fields)
            .build()
            .expect("valid group"),
    )
}

/// `{value, versions: LIST<STRUCT<…>>}` named `name`.
fn property_type(name: &str, sources: bool) -> TypePtr {
    let element = group(
        "element",
        Repetition::OPTIONAL,
        version_fields(sources)
            .into_iter()
            .map(|(n, t)| leaf(n, t, Repetition::OPTIONAL))
            .collect(),
    );
    let list = group("list", Repetition::REPEATED, vec![element]);
    let versions = Arc::new(
        Type::group_type_builder("versions")
            .with_repetition(Repetition::OPTIONAL)
            .with_converted_type(ConvertedType::LIST)
            .with_logical_type(Some(LogicalType::List))
            .with_fields(vec![list])
            .build()
            .expect("valid list"),
    );
    group(
        name,
        Repetition::OPTIONAL,
        vec![
            leaf("value", Physical::BYTE_ARRAY, Repetition::OPTIONAL),
            versions,
        ],
    )
}

/// The object id column of each dialect: v1 `vid`, deals `dealId`, v3 `id` as a string.
fn id_column(dialect: super::Dialect) -> (&'static str, Physical) {
    match dialect {
        super::Dialect::V1 => ("vid", Physical::INT64),
        super::Dialect::V1Deals => ("dealId", Physical::INT64),
        super::Dialect::V3 => ("id", Physical::BYTE_ARRAY),
    }
}

fn schema(model: &Model, dialect: super::Dialect, map: bool, sources: bool) -> TypePtr {
    let properties = if map {
        let key = leaf("key", Physical::BYTE_ARRAY, Repetition::REQUIRED);
        let key_value = group(
            "key_value",
            Repetition::REPEATED,
            vec![key, property_type("value", sources)],
        );
        Arc::new(
            Type::group_type_builder("properties")
                .with_repetition(Repetition::OPTIONAL)
                .with_converted_type(ConvertedType::MAP)
                .with_logical_type(Some(LogicalType::Map))
                .with_fields(vec![key_value])
                .build()
                .expect("valid map"),
        )
    } else {
        group(
            "properties",
            Repetition::OPTIONAL,
            model
                .names
                .iter()
                .map(|n| property_type(n, sources))
                .collect(),
        )
    };
    Arc::new(
        Type::group_type_builder("hubspot")
            .with_fields(vec![
                {
                    let (name, physical) = id_column(dialect);
                    leaf(name, physical, Repetition::REQUIRED)
                },
                properties,
            ])
            .build()
            .expect("valid schema"),
    )
}

/// One row group's objects: per property, the objects that have it and their versions.
struct Group {
    ids: Vec<i64>,
    /// Per property: (object index in the group, versions newest first).
    by_property: Vec<Vec<(u32, Vec<Version>)>>,
}

fn build_group(
    config: &GenConfig,
    model: &Model,
    part: &Part<'_>,
    objects: &[u64],
    sum: &mut Checksum,
) -> Group {
    let sources = config.parquet_sources;
    let mut g = Group {
        ids: Vec::new(),
        by_property: vec![Vec::new(); model.names.len()],
    };
    let mut buffers = Buffers::default();
    for (k, &i) in objects.iter().enumerate() {
        let id = object_id(i);
        g.ids.push(id);
        let each = |p: usize, vs: &[Version]| -> std::result::Result<(), ()> {
            for v in vs {
                sum.add(&model.names[p], &read_back(id, v, config.dialect, sources));
            }
            g.by_property[p].push((k as u32, vs.to_vec()));
            Ok(())
        };
        let _ = part
            .timeline
            .histories(model, i, part.step, &mut buffers, each);
    }
    g
}

/// Levels and values of one leaf column, reused across columns.
#[derive(Default)]
struct Leaf {
    def: Vec<i16>,
    rep: Vec<i16>,
    strings: Vec<ByteArray>,
    ints: Vec<i64>,
}

impl Leaf {
    fn clear(&mut self) {
        self.def.clear();
        self.rep.clear();
        self.strings.clear();
        self.ints.clear();
    }
}

/// A version field's value, as the leaf of field `f` (index into [`version_fields`]).
fn push_field(
    leaf: &mut Leaf,
    f: usize,
    v: &Version,
    dialect: super::Dialect,
    max_def: i16,
    rep: i16,
) {
    let (source_id, source_label, updated_by) = as_read(dialect, v);
    let s: Option<Option<&str>> = match f {
        0 => Some(v.value.as_deref()),
        2 => Some(v.source_type),
        3 => Some(source_id),
        4 => Some(source_label),
        _ => None,
    };
    leaf.rep.push(rep);
    match s {
        Some(Some(text)) => {
            leaf.def.push(max_def);
            leaf.strings.push(ByteArray::from(text.as_bytes().to_vec()));
        }
        Some(None) => leaf.def.push(max_def - 1),
        None => {
            let n = if f == 1 {
                Some(v.timestamp)
            } else {
                updated_by
            };
            match n {
                Some(n) => {
                    leaf.def.push(max_def);
                    leaf.ints.push(n);
                }
                None => leaf.def.push(max_def - 1),
            }
        }
    }
}

type Emit<'a> = dyn FnMut(&Leaf, Physical) -> parquet::errors::Result<()> + 'a;

/// Writes objects `objects` to file `f`; returns their checksum.
pub(super) fn write(config: &GenConfig, model: &Model, part: &Part<'_>) -> Result<Checksum> {
    let path = &part.path;
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    let pq = |source| Error::Parquet {
        path: path.clone(),
        source,
    };
    // Snappy, as Spark and pyarrow write by default.
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build(),
    );
    let schema = schema(
        model,
        config.dialect,
        config.parquet_map,
        config.parquet_sources,
    );
    let mut writer = SerializedFileWriter::new(file, schema, props).map_err(pq)?;
    let fields = version_fields(config.parquet_sources);
    let mut sum = Checksum::default();
    let mut leaf = Leaf::default();
    let objects = part.objects;
    let mut start = 0;
    while start < objects.len() {
        let end = (start + config.row_group_objects.max(1) as usize).min(objects.len());
        let g = build_group(config, model, part, &objects[start..end], &mut sum);
        let mut rg = writer.next_row_group().map_err(pq)?;
        let mut id = rg.next_column().map_err(pq)?.expect("id column");
        match id_column(config.dialect).1 {
            Physical::INT64 => id.typed::<Int64Type>().write_batch(&g.ids, None, None),
            _ => {
                let text: Vec<ByteArray> = g
                    .ids
                    .iter()
                    .map(|i| ByteArray::from(i.to_string().into_bytes()))
                    .collect();
                id.typed::<ByteArrayType>().write_batch(&text, None, None)
            }
        }
        .map_err(pq)?;
        id.close().map_err(pq)?;
        let mut emit = |leaf: &Leaf, physical: Physical| -> parquet::errors::Result<()> {
            let mut col = rg.next_column()?.expect("schema column");
            let (def, rep) = (Some(&leaf.def[..]), Some(&leaf.rep[..]));
            match physical {
                Physical::INT64 => col.typed::<Int64Type>().write_batch(&leaf.ints, def, rep)?,
                _ => col
                    .typed::<ByteArrayType>()
                    .write_batch(&leaf.strings, def, rep)?,
            };
            col.close()
        };
        if config.parquet_map {
            write_map_group(config, model, &g, &fields, &mut leaf, &mut emit).map_err(pq)?;
        } else {
            write_struct_group(config, model, &g, &fields, &mut leaf, &mut emit).map_err(pq)?;
        }
        rg.close().map_err(pq)?;
        start = end;
    }
    writer.close().map_err(pq)?;
    Ok(sum)
}

/// STRUCT form. Per property: `value` (max def 3), then each version field (max def 6, max
/// rep 1). An object without the property has its group null: definition level 1.
fn write_struct_group(
    config: &GenConfig,
    model: &Model,
    g: &Group,
    fields: &[(&str, Physical)],
    leaf: &mut Leaf,
    emit: &mut Emit<'_>,
) -> parquet::errors::Result<()> {
    let n = g.ids.len();
    for p in 0..model.names.len() {
        let has = &g.by_property[p];
        leaf.clear();
        let mut next = has.iter().peekable();
        for o in 0..n {
            leaf.rep.push(0);
            match next.next_if(|(k, _)| *k as usize == o) {
                Some((_, vs)) => match &vs[0].value {
                    Some(v) => {
                        leaf.def.push(3);
                        leaf.strings.push(ByteArray::from(v.as_bytes().to_vec()));
                    }
                    None => leaf.def.push(2),
                },
                None => leaf.def.push(1),
            }
        }
        emit(leaf, Physical::BYTE_ARRAY)?;
        for (f, &(_, physical)) in fields.iter().enumerate() {
            leaf.clear();
            let mut next = has.iter().peekable();
            for o in 0..n {
                match next.next_if(|(k, _)| *k as usize == o) {
                    Some((_, vs)) => {
                        for (k, v) in vs.iter().enumerate() {
                            push_field(leaf, f, v, config.dialect, 6, i16::from(k > 0));
                        }
                    }
                    None => {
                        leaf.def.push(1);
                        leaf.rep.push(0);
                    }
                }
            }
            emit(leaf, physical)?;
        }
    }
    Ok(())
}

/// MAP form: one entry per property an object has. `key` (max def 2, max rep 1), the current
/// `value` (max def 4), then each version field (max def 7, max rep 2). An object with no
/// properties has an empty map: definition level 1.
fn write_map_group(
    config: &GenConfig,
    model: &Model,
    g: &Group,
    fields: &[(&str, Physical)],
    leaf: &mut Leaf,
    emit: &mut Emit<'_>,
) -> parquet::errors::Result<()> {
    let n = g.ids.len();
    let mut entries: Vec<Vec<(usize, &[Version])>> = vec![Vec::new(); n];
    for p in 0..model.names.len() {
        for (k, vs) in &g.by_property[p] {
            entries[*k as usize].push((p, vs));
        }
    }
    leaf.clear();
    for e in &entries {
        if e.is_empty() {
            leaf.def.push(1);
            leaf.rep.push(0);
        }
        for (j, (p, _)) in e.iter().enumerate() {
            leaf.def.push(2);
            leaf.rep.push(i16::from(j > 0));
            leaf.strings
                .push(ByteArray::from(model.names[*p].as_bytes().to_vec()));
        }
    }
    emit(leaf, Physical::BYTE_ARRAY)?;
    leaf.clear();
    for e in &entries {
        if e.is_empty() {
            leaf.def.push(1);
            leaf.rep.push(0);
        }
        for (j, (_, vs)) in e.iter().enumerate() {
            leaf.rep.push(i16::from(j > 0));
            match &vs[0].value {
                Some(v) => {
                    leaf.def.push(4);
                    leaf.strings.push(ByteArray::from(v.as_bytes().to_vec()));
                }
                None => leaf.def.push(3),
            }
        }
    }
    emit(leaf, Physical::BYTE_ARRAY)?;
    for (f, &(_, physical)) in fields.iter().enumerate() {
        leaf.clear();
        for e in &entries {
            if e.is_empty() {
                leaf.def.push(1);
                leaf.rep.push(0);
            }
            for (j, (_, vs)) in e.iter().enumerate() {
                for (k, v) in vs.iter().enumerate() {
                    let rep = match (j, k) {
                        (0, 0) => 0,
                        (_, 0) => 1,
                        _ => 2,
                    };
                    push_field(leaf, f, v, config.dialect, 7, rep);
                }
            }
        }
        emit(leaf, physical)?;
    }
    Ok(())
}
