//! Foreign Parquet: segments rewritten by another writer (DuckDB, pandas, Spark, pyarrow)
//! read as the capture schema when that is lossless, and are refused with a reason when not.
//!
//! Another writer may store `stack_id` as Int64, strings as LargeUtf8, Utf8View or
//! dictionaries, times in micro- or milliseconds, columns as nullable. [`shape`] judges a
//! file's column type against the capture's from the footer alone: the same type, a
//! widening that can never lose anything (LargeUtf8 to Utf8, UInt32 to UInt64), a cast that
//! is lossless only for some values (Int64 to UInt64 without negatives, microseconds to
//! nanoseconds before 2262, a nullable column without nulls), or no reading at all (text
//! to an id, a float to an integer, a missing required column).
//! [`conform`] casts a batch to the capture schema with `safe = false`, so any value that
//! would be lost (a negative id, a time past 2262, a null in a required column) is an error
//! instead of a silent null or a wrapped number. The catalog runs both on every segment
//! whose schema is not the capture's before any query, and leaves out (with a warning) the
//! ones that fail, so DataFusion's own casts and the direct scans never meet them.

use std::sync::Arc;

use arrow_array::{new_null_array, Array, ArrayRef, RecordBatch, RecordBatchOptions};
use arrow_cast::{cast_with_options, CastOptions};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// What reading a column of one type as another takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Shape {
    /// The same type: nothing to do.
    Same,
    /// A cast that never loses anything.
    Widen,
    /// A cast that is lossless only for some values: every value must be checked.
    Check,
}

fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// Bits and signedness of an integer type.
fn int_info(t: &DataType) -> Option<(u32, bool)> {
    Some(match t {
        DataType::Int8 => (8, true),
        DataType::Int16 => (16, true),
        DataType::Int32 => (32, true),
        DataType::Int64 => (64, true),
        DataType::UInt8 => (8, false),
        DataType::UInt16 => (16, false),
        DataType::UInt32 => (32, false),
        DataType::UInt64 => (64, false),
        _ => return None,
    })
}

/// How a column of type `from` (nullable `from_null`) reads as `to` (nullable `to_null`);
/// `Err` says why it cannot.
pub fn shape(
    from: &DataType,
    from_null: bool,
    to: &DataType,
    to_null: bool,
) -> Result<Shape, String> {
    let nulls = if from_null && !to_null {
        Shape::Check
    } else {
        Shape::Same
    };
    let s = type_shape(from, to)?;
    Ok(s.max(nulls))
}

fn type_shape(from: &DataType, to: &DataType) -> Result<Shape, String> {
    use DataType::*;
    if from == to {
        return Ok(Shape::Same);
    }
    let no = || Err(format!("{from} cannot be read as {to}"));
    match (from, to) {
        (f, Utf8) if is_string(f) => Ok(Shape::Widen),
        (Dictionary(_, v), Utf8) if is_string(v) => Ok(Shape::Widen),
        (Dictionary(_, v), t) if int_info(t).is_some() || matches!(t, Float64) => {
            type_shape(v, t).map(|s| s.max(Shape::Widen))
        }
        (f, t) if int_info(f).is_some() && int_info(t).is_some() => {
            let (fb, fs) = int_info(f).unwrap_or((64, true));
            let (tb, ts) = int_info(t).unwrap_or((64, true));
            let widening = (fs == ts && fb <= tb) || (!fs && ts && fb < tb);
            Ok(if widening { Shape::Widen } else { Shape::Check })
        }
        (Float16 | Float32, Float64) => Ok(Shape::Widen),
        (f, Float64) if int_info(f).is_some_and(|(bits, _)| bits <= 32) => Ok(Shape::Widen),
        (Timestamp(fu, _), Timestamp(tu, _)) => {
            // Time zones only label the same instants; a finer unit can overflow.
            Ok(if fu == tu || *fu == TimeUnit::Nanosecond {
                Shape::Widen
            } else {
                Shape::Check
            })
        }
        (List(f) | LargeList(f), List(t)) => {
            let inner = shape(
                f.data_type(),
                f.is_nullable(),
                t.data_type(),
                t.is_nullable(),
            )?;
            Ok(inner.max(Shape::Widen))
        }
        (Struct(ff), Struct(tf)) => {
            if ff.len() != tf.len() {
                return Err(format!(
                    "struct fields ({}) are not the capture's ({})",
                    names(ff.iter().map(|f| f.name())),
                    names(tf.iter().map(|f| f.name()))
                ));
            }
            let mut worst = Shape::Widen;
            for t in tf.iter() {
                let Some(f) = ff.iter().find(|f| f.name() == t.name()) else {
                    return Err(format!("struct has no field '{}'", t.name()));
                };
                let s = shape(
                    f.data_type(),
                    f.is_nullable(),
                    t.data_type(),
                    t.is_nullable(),
                )
                .map_err(|e| format!("field '{}': {e}", t.name()))?;
                worst = worst.max(s);
            }
            Ok(worst)
        }
        _ => no(),
    }
}

fn names<'a>(it: impl Iterator<Item = &'a String>) -> String {
    it.map(String::as_str).collect::<Vec<_>>().join(", ")
}

/// How a segment with schema `file` reads as the table schema `want`: the worst shape of
/// any column, and the names of the columns whose values must be checked. Missing nullable
/// columns read as nulls; a missing required column is an error.
pub fn judge(file: &Schema, want: &Schema) -> Result<(Shape, Vec<String>), String> {
    let mut worst = Shape::Same;
    let mut check = Vec::new();
    for w in want.fields() {
        let Ok(f) = file.field_with_name(w.name()) else {
            if w.is_nullable() {
                worst = worst.max(Shape::Widen);
                continue;
            }
            return Err(format!("no column '{}'", w.name()));
        };
        let s = shape(
            f.data_type(),
            f.is_nullable(),
            w.data_type(),
            w.is_nullable(),
        )
        .map_err(|e| format!("column '{}': {e}", w.name()))?;
        if s == Shape::Check {
            check.push(w.name().clone());
        }
        worst = worst.max(s);
    }
    Ok((worst, check))
}

/// The cast options of every conversion: an unrepresentable value is an error, never null.
const STRICT: CastOptions<'static> = CastOptions {
    safe: false,
    format_options: arrow_cast::display::FormatOptions::new(),
};

/// One column read as `want`: cast when its type differs, checked for nulls when `want` is
/// required. `Err` names the column and the problem.
pub fn conform_column(col: &ArrayRef, want: &Field) -> Result<ArrayRef, String> {
    let out = if col.data_type() == want.data_type() {
        col.clone()
    } else {
        shape(col.data_type(), true, want.data_type(), true)
            .map_err(|e| format!("column '{}': {e}", want.name()))?;
        cast_with_options(col, want.data_type(), &STRICT).map_err(|e| {
            format!(
                "column '{}' ({}): {}",
                want.name(),
                col.data_type(),
                one_line(&e.to_string())
            )
        })?
    };
    if !want.is_nullable() && out.null_count() > 0 {
        return Err(format!(
            "column '{}': {} null value(s) in a required column",
            want.name(),
            out.null_count()
        ));
    }
    Ok(out)
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The batch with exactly the columns of `want`, in its order, each cast to its type
/// (missing nullable columns as nulls). A batch already of those types is returned as is.
pub fn conform(batch: &RecordBatch, want: &SchemaRef) -> Result<RecordBatch, String> {
    let same = batch.num_columns() == want.fields().len()
        && batch
            .schema()
            .fields()
            .iter()
            .zip(want.fields())
            .all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type());
    if same {
        return Ok(batch.clone());
    }
    let mut columns = Vec::with_capacity(want.fields().len());
    for w in want.fields() {
        match batch.column_by_name(w.name()) {
            Some(c) => columns.push(conform_column(c, w)?),
            None if w.is_nullable() => {
                columns.push(new_null_array(w.data_type(), batch.num_rows()))
            }
            None => return Err(format!("no column '{}'", w.name())),
        }
    }
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    RecordBatch::try_new_with_options(want.clone(), columns, &options)
        .map_err(|e| one_line(&e.to_string()))
}

/// `schema` with every field nested in a list or struct made nullable (top-level columns
/// keep theirs): the schema the SQL tables are registered with. DataFusion refuses to plan a
/// cast from a nullable nested field to a non-nullable one, which is how DuckDB and pyarrow
/// write every nested field; the catalog has already checked that such a segment holds no
/// null there, so nothing that reads the tables sees one.
pub fn relaxed(schema: &Schema) -> SchemaRef {
    fn relax_type(t: &DataType) -> DataType {
        match t {
            DataType::List(f) => DataType::List(Arc::new(relax_field(f))),
            DataType::LargeList(f) => DataType::LargeList(Arc::new(relax_field(f))),
            DataType::Struct(fields) => {
                DataType::Struct(fields.iter().map(|f| relax_field(f)).collect())
            }
            other => other.clone(),
        }
    }
    fn relax_field(f: &Field) -> Field {
        f.clone()
            .with_data_type(relax_type(f.data_type()))
            .with_nullable(true)
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_data_type(relax_type(f.data_type())))
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// The fields of `table` named in `columns`, in that order, as a schema.
pub fn project(table: &Schema, columns: &[&str]) -> Result<SchemaRef, String> {
    let fields = columns
        .iter()
        .map(|c| {
            table
                .field_with_name(c)
                .cloned()
                .map_err(|_| format!("the capture schema has no column '{c}'"))
        })
        .collect::<Result<Vec<Field>, String>>()?;
    Ok(Arc::new(Schema::new(fields)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{TimestampNanosecondType, UInt64Type};
    use arrow_array::{Int64Array, LargeStringArray, StringViewArray, TimestampMicrosecondArray};

    fn want() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("stack_id", DataType::UInt64, false),
            Field::new("kind", DataType::Utf8, false),
            Field::new(
                "time",
                DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
                false,
            ),
            Field::new("labels", DataType::Utf8, true),
        ]))
    }

    fn batch(ids: Vec<i64>, kind: ArrayRef, us: Vec<i64>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("stack_id", DataType::Int64, true),
            Field::new("kind", kind.data_type().clone(), true),
            Field::new(
                "time",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                true,
            ),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(ids)),
                kind,
                Arc::new(TimestampMicrosecondArray::from(us)),
            ],
        )
        .unwrap()
    }

    #[test]
    fn foreign_types_cast_when_lossless() {
        let b = batch(
            vec![1, i64::MAX],
            Arc::new(LargeStringArray::from(vec!["heap", "goroutine"])),
            vec![1_000, 2_000],
        );
        let (s, check) = judge(&b.schema(), &want()).unwrap();
        assert_eq!(s, Shape::Check);
        assert_eq!(check, ["stack_id", "kind", "time"]);
        let out = conform(&b, &want()).unwrap();
        assert_eq!(out.schema(), want());
        assert_eq!(
            out.column(0).as_primitive::<UInt64Type>().value(1),
            i64::MAX as u64
        );
        assert_eq!(out.column(1).as_string::<i32>().value(1), "goroutine");
        assert_eq!(
            out.column(2)
                .as_primitive::<TimestampNanosecondType>()
                .value(0),
            1_000_000
        );
        assert_eq!(
            out.column(3).null_count(),
            2,
            "a missing nullable column reads as nulls"
        );
        let v = batch(
            vec![7],
            Arc::new(StringViewArray::from(vec!["heap"])),
            vec![0],
        );
        assert_eq!(
            conform(&v, &want())
                .unwrap()
                .column(1)
                .as_string::<i32>()
                .value(0),
            "heap"
        );
    }

    #[test]
    fn lossy_values_are_errors_naming_the_column() {
        let neg = batch(
            vec![-1],
            Arc::new(LargeStringArray::from(vec!["heap"])),
            vec![0],
        );
        let e = conform(&neg, &want()).unwrap_err();
        assert!(e.contains("stack_id"), "{e}");
        let far = batch(
            vec![1],
            Arc::new(LargeStringArray::from(vec!["heap"])),
            vec![i64::MAX],
        );
        let e = conform(&far, &want()).unwrap_err();
        assert!(e.contains("time"), "{e}");
        let nulls = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new(
                "stack_id",
                DataType::Int64,
                true,
            )])),
            vec![Arc::new(Int64Array::from(vec![Some(1), None]))],
        )
        .unwrap();
        let one = project(&want(), &["stack_id"]).unwrap();
        assert!(conform(&nulls, &one).unwrap_err().contains("null"));
    }

    #[test]
    fn our_own_segments_need_no_cast() {
        // The scans' fast path: a capture written by leakscope is read without any cast.
        use leakscope_capture::schema::Table;
        let demo =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/captures/demo");
        let mut seen = 0;
        for t in Table::ALL {
            for seg in leakscope_capture::segment::list_segments(&demo, t).unwrap() {
                let file = std::fs::File::open(&seg.path).unwrap();
                // As the scans open them: without the footer's embedded Arrow schema.
                let options = parquet::arrow::arrow_reader::ArrowReaderOptions::new()
                    .with_skip_arrow_metadata(true);
                let b = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new_with_options(
                    file, options,
                )
                .unwrap();
                // The demo predates `scrapes.clock_offset_ms` (a nullable column added
                // later): it reads as nulls, still without a cast.
                let want = if t == Table::Scrapes {
                    Shape::Widen
                } else {
                    Shape::Same
                };
                assert_eq!(judge(b.schema(), &t.schema()), Ok((want, vec![])), "{t:?}");
                seen += 1;
            }
        }
        assert!(seen >= 20);
    }

    #[test]
    fn relaxed_schemas_make_only_nested_fields_nullable() {
        let stacks = leakscope_capture::schema::stacks_schema();
        let r = relaxed(&stacks);
        assert!(!r.field_with_name("frames").unwrap().is_nullable());
        let DataType::List(item) = r.field_with_name("frames").unwrap().data_type() else {
            panic!("frames is a list")
        };
        let DataType::Struct(fields) = item.data_type() else {
            panic!("frames holds structs")
        };
        assert!(item.is_nullable() && fields.iter().all(|f| f.is_nullable()));
        assert!(!r.field_with_name("stack_id").unwrap().is_nullable());
        // Our own type still reads as the relaxed one without a value check.
        let own = stacks.field_with_name("frames").unwrap();
        let rel = r.field_with_name("frames").unwrap();
        assert_eq!(
            shape(own.data_type(), false, rel.data_type(), false),
            Ok(Shape::Widen)
        );
    }

    #[test]
    fn unreadable_types_are_refused_up_front() {
        let text = Schema::new(vec![Field::new("stack_id", DataType::Utf8, false)]);
        let e = judge(&text, &project(&want(), &["stack_id"]).unwrap()).unwrap_err();
        assert!(e.contains("stack_id") && e.contains("Utf8"), "{e}");
        let none = Schema::new(vec![Field::new("labels", DataType::Utf8, true)]);
        assert!(judge(&none, &want())
            .unwrap_err()
            .contains("no column 'stack_id'"));
        assert_eq!(
            shape(&DataType::UInt32, false, &DataType::UInt64, false),
            Ok(Shape::Widen)
        );
        assert_eq!(
            shape(&DataType::UInt64, false, &DataType::Int64, true),
            Ok(Shape::Check)
        );
        assert!(shape(&DataType::Float64, false, &DataType::Int64, true).is_err());
    }
}
