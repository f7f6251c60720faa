//! SQL functions for leak questions: byte formatting, stack rendering, call sites, and the
//! trend statistics (Theil-Sen slope, Mann-Kendall p-value) as aggregates.

use leakscope_capture::schema::col;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_array::{Array, ArrayRef, Float64Array, ListArray, StringArray, StructArray};
use arrow_schema::DataType;
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{create_udaf, create_udf, Accumulator, ColumnarValue, Volatility};
use datafusion::prelude::SessionContext;

use crate::model::site::{FrameRef, SiteRules};
use crate::model::stats;

pub use crate::units::format_bytes;

/// A `stacks.frames` list column with its frame fields looked up once, so each row
/// decodes from the flat child arrays. (The list was sliced per row and each field found
/// by name each time; without that, loading the stacks and the profile list of the 100M
/// capture took 89 instead of 94 ms, median of 10 runs with the scan change of the same
/// commit.)
pub struct FrameLists<'a> {
    list: &'a ListArray,
    function: Option<&'a StringArray>,
    file: Option<&'a StringArray>,
    line: Option<&'a arrow_array::PrimitiveArray<arrow_array::types::Int64Type>>,
}

impl<'a> FrameLists<'a> {
    /// The frame fields of `list` (a field that is missing decodes as empty or 0).
    pub fn new(list: &'a ListArray) -> FrameLists<'a> {
        let st: &StructArray = list.values().as_struct();
        FrameLists {
            list,
            function: st
                .column_by_name(col::FUNCTION)
                .map(|c| c.as_string::<i32>()),
            file: st.column_by_name(col::FILE).map(|c| c.as_string::<i32>()),
            line: st.column_by_name(col::LINE).map(|c| c.as_primitive()),
        }
    }

    /// The frames of row `row`, leaf first; none for a null list.
    pub fn frames(&self, row: usize) -> Vec<FrameRef> {
        if self.list.is_null(row) {
            return Vec::new();
        }
        let offsets = self.list.value_offsets();
        let (lo, hi) = (offsets[row] as usize, offsets[row + 1] as usize);
        (lo..hi)
            .map(|i| FrameRef {
                function: self
                    .function
                    .map(|a| a.value(i).to_string())
                    .unwrap_or_default(),
                file: self
                    .file
                    .map(|a| a.value(i).to_string())
                    .unwrap_or_default(),
                line: self.line.map(|a| a.value(i)).unwrap_or(0),
            })
            .collect()
    }
}

/// The type of `stacks.frames` as the SQL tables have it (nested fields nullable, see
/// [`crate::sql::conform::relaxed`]).
fn frames_type() -> DataType {
    let table = crate::sql::conform::relaxed(&leakscope_capture::schema::stacks_schema());
    table
        .field_with_name(col::FRAMES)
        .map(|f| f.data_type().clone())
        .unwrap_or_else(|_| DataType::List(leakscope_capture::schema::frame_item_field()))
}

fn map_frames(
    args: &[ColumnarValue],
    f: impl Fn(&[FrameRef]) -> Option<String>,
) -> Result<ColumnarValue> {
    let arrays = ColumnarValue::values_to_arrays(args)?;
    let list = arrays[0].as_list::<i32>();
    let frames = FrameLists::new(list);
    let out: StringArray = (0..list.len())
        .map(|i| {
            if list.is_null(i) {
                None
            } else {
                f(&frames.frames(i))
            }
        })
        .collect();
    Ok(ColumnarValue::Array(Arc::new(out)))
}

/// Registers every leakscope SQL function on `ctx`.
pub fn register(ctx: &SessionContext, rules: &SiteRules) {
    ctx.register_udf(create_udf(
        "format_bytes",
        vec![DataType::Float64],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let a = arrays[0].as_primitive::<Float64Type>();
            let out: StringArray = a.iter().map(|v| v.map(format_bytes)).collect();
            Ok(ColumnarValue::Array(Arc::new(out)))
        }),
    ));
    ctx.register_udf(create_udf(
        "render_stack",
        vec![frames_type()],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            map_frames(args, |fr| {
                Some(
                    fr.iter()
                        .map(FrameRef::display)
                        .collect::<Vec<_>>()
                        .join(" <- "),
                )
            })
        }),
    ));
    let r = rules.clone();
    ctx.register_udf(create_udf(
        "user_frame",
        vec![frames_type()],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(move |args: &[ColumnarValue]| {
            map_frames(args, |fr| fr.get(r.site_index(fr)).map(FrameRef::display))
        }),
    ));
    let r = rules.clone();
    ctx.register_udf(create_udf(
        "user_function",
        vec![frames_type()],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(move |args: &[ColumnarValue]| {
            map_frames(args, |fr| {
                fr.get(r.site_index(fr)).map(|f| f.function.clone())
            })
        }),
    ));
    let r = rules.clone();
    ctx.register_udf(create_udf(
        "blocked_in",
        vec![frames_type()],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(move |args: &[ColumnarValue]| {
            map_frames(args, |fr| {
                let i = r.site_index(fr);
                fr.get(i.saturating_sub(1)).map(|f| f.function.clone())
            })
        }),
    ));
    ctx.register_udf(create_udf(
        "leaf_function",
        vec![frames_type()],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            map_frames(args, |fr| fr.first().map(|f| f.function.clone()))
        }),
    ));
    let state = Arc::new(vec![
        DataType::List(Arc::new(arrow_schema::Field::new(
            "item",
            DataType::Float64,
            true,
        ))),
        DataType::List(Arc::new(arrow_schema::Field::new(
            "item",
            DataType::Float64,
            true,
        ))),
    ]);
    ctx.register_udaf(create_udaf(
        "theil_sen",
        vec![DataType::Float64, DataType::Float64],
        Arc::new(DataType::Float64),
        Volatility::Immutable,
        Arc::new(|_| Ok(Box::new(PointsAccumulator::new(Statistic::TheilSen)))),
        Arc::clone(&state),
    ));
    ctx.register_udaf(create_udaf(
        "mann_kendall_p",
        vec![DataType::Float64, DataType::Float64],
        Arc::new(DataType::Float64),
        Volatility::Immutable,
        Arc::new(|_| Ok(Box::new(PointsAccumulator::new(Statistic::MannKendallP)))),
        state,
    ));
}

/// Which statistic a [`PointsAccumulator`] computes.
#[derive(Debug, Clone, Copy)]
enum Statistic {
    TheilSen,
    MannKendallP,
}

/// Collects (x, y) points of a group and computes a trend statistic over them.
#[derive(Debug)]
struct PointsAccumulator {
    stat: Statistic,
    x: Vec<f64>,
    y: Vec<f64>,
}

impl PointsAccumulator {
    fn new(stat: Statistic) -> Self {
        PointsAccumulator {
            stat,
            x: Vec::new(),
            y: Vec::new(),
        }
    }

    fn push_arrays(&mut self, xs: &ArrayRef, ys: &ArrayRef) {
        let xs = xs.as_primitive::<Float64Type>();
        let ys = ys.as_primitive::<Float64Type>();
        for i in 0..xs.len().min(ys.len()) {
            if xs.is_valid(i) && ys.is_valid(i) {
                self.x.push(xs.value(i));
                self.y.push(ys.value(i));
            }
        }
    }
}

fn list_scalar(v: &[f64]) -> ScalarValue {
    let arr: ArrayRef = Arc::new(Float64Array::from(v.to_vec()));
    ScalarValue::List(Arc::new(ListArray::new(
        Arc::new(arrow_schema::Field::new("item", DataType::Float64, true)),
        arrow_buffer::OffsetBuffer::from_lengths([arr.len()]),
        arr,
        None,
    )))
}

impl Accumulator for PointsAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        if values.len() != 2 {
            return Err(DataFusionError::Plan("expects (x, y)".into()));
        }
        self.push_arrays(&values[0], &values[1]);
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let mut idx: Vec<usize> = (0..self.x.len()).collect();
        // By x, then y: points arrive in any order (partitions, a cluster's tasks), and
        // with repeated x values the statistics must not depend on it.
        idx.sort_by(|&a, &b| {
            self.x[a]
                .total_cmp(&self.x[b])
                .then(self.y[a].total_cmp(&self.y[b]))
        });
        let x: Vec<f64> = idx.iter().map(|&i| self.x[i]).collect();
        let y: Vec<f64> = idx.iter().map(|&i| self.y[i]).collect();
        let v = match self.stat {
            Statistic::TheilSen => stats::theil_sen(&x, &y),
            Statistic::MannKendallP => {
                let k = stats::mann_kendall(&x, &y);
                (k.n >= 3).then(|| k.p_two_sided())
            }
        };
        Ok(ScalarValue::Float64(v))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + (self.x.capacity() + self.y.capacity()) * 8
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![list_scalar(&self.x), list_scalar(&self.y)])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let xs = states[0].as_list::<i32>();
        let ys = states[1].as_list::<i32>();
        for i in 0..xs.len() {
            if xs.is_valid(i) && ys.is_valid(i) {
                self.push_arrays(&xs.value(i), &ys.value(i));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_format() {
        assert_eq!(format_bytes(512.0), "512 B");
        assert_eq!(format_bytes(1536.0), "1.5 KiB");
        assert_eq!(format_bytes(-3.0 * 1024.0 * 1024.0), "-3.0 MiB");
    }
}
