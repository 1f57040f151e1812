//! Guards on the SQL functions whose output can be far larger than their input.
//!
//! DataFusion's memory pool covers operators (joins, sorts, aggregations), not the value a
//! scalar function allocates: `repeat('x', 2000000000)` or `range(1, 5000000000)` asks the
//! allocator for gigabytes at once, and a failed allocation aborts the process. Each function
//! below is replaced by a wrapper that estimates, from its arguments, the most its output can
//! take, reserves that in the query memory pool for the duration of the call, and refuses the
//! call (`resources_exhausted`) when the pool cannot give it. Everything else is delegated.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, FieldRef, Int64Type, TimeUnit};
use datafusion::common::{Result, ScalarValue};
use datafusion::execution::context::SessionContext;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryPool};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature,
};

/// How a function's output grows with its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Growth {
    /// `repeat(text, n)`: length × n.
    Repeat,
    /// `lpad/rpad(text, n[, fill])`: n characters.
    Pad,
    /// `replace(text, from, to)`, `regexp_replace(text, pattern, to[, flags])`: at most
    /// (length + 1) × (len(to) + 1) when every position matches.
    Replace,
    /// `range/generate_series([start,] stop[, step])`: (stop − start) / step elements.
    Series,
    /// `array_repeat(value, n)`, `array_resize(array, n[, value])`: n elements.
    Elements,
}

/// The functions guarded, by name.
const GUARDED: &[(&str, Growth)] = &[
    ("repeat", Growth::Repeat),
    ("lpad", Growth::Pad),
    ("rpad", Growth::Pad),
    ("replace", Growth::Replace),
    ("regexp_replace", Growth::Replace),
    ("range", Growth::Series),
    ("generate_series", Growth::Series),
    ("array_repeat", Growth::Elements),
    ("array_resize", Growth::Elements),
];

/// Replaces the guarded functions of `ctx` by wrappers that reserve their output in `pool`.
pub fn install(ctx: &SessionContext, pool: &Arc<dyn MemoryPool>) {
    let functions = ctx.state().scalar_functions().clone();
    for (name, growth) in GUARDED {
        if let Some(udf) = functions.get(*name) {
            ctx.register_udf(ScalarUDF::new_from_impl(Guarded {
                inner: udf.inner().clone(),
                growth: *growth,
                pool: pool.clone(),
            }));
        }
    }
}

#[derive(Debug)]
struct Guarded {
    inner: Arc<dyn ScalarUDFImpl>,
    growth: Growth,
    pool: Arc<dyn MemoryPool>,
}

impl PartialEq for Guarded {
    fn eq(&self, other: &Guarded) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner) && self.growth == other.growth
    }
}

impl Eq for Guarded {}

impl Hash for Guarded {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.inner.name().hash(state);
        self.growth.hash(state);
    }
}

/// The longest value (bytes) of a text argument; 16 for other types.
fn longest(v: &ColumnarValue) -> u64 {
    match v {
        ColumnarValue::Scalar(
            ScalarValue::Utf8(s) | ScalarValue::LargeUtf8(s) | ScalarValue::Utf8View(s),
        ) => s.as_ref().map_or(0, |s| s.len() as u64),
        ColumnarValue::Scalar(_) => 16,
        ColumnarValue::Array(a) => longest_in(a),
    }
}

fn longest_in(a: &ArrayRef) -> u64 {
    let max = |it: &mut dyn Iterator<Item = Option<&str>>| {
        it.map(|s| s.map_or(0, |s| s.len() as u64))
            .max()
            .unwrap_or(0)
    };
    match a.data_type() {
        DataType::Utf8 => max(&mut a.as_string::<i32>().iter()),
        DataType::LargeUtf8 => max(&mut a.as_string::<i64>().iter()),
        DataType::Utf8View => max(&mut a.as_string_view().iter()),
        _ if a.is_empty() => 0,
        _ => (a.get_array_memory_size() / a.len()).max(16) as u64,
    }
}

/// The largest value of an integer-like argument (dates in days, timestamps in their unit),
/// or `None` when it has no such value.
fn largest(v: &ColumnarValue, smallest: bool) -> Option<i64> {
    let pick =
        |a: Option<i64>, b: i64| Some(a.map_or(b, |a| if smallest { a.min(b) } else { a.max(b) }));
    match v {
        ColumnarValue::Scalar(s) => match s.cast_to(&DataType::Int64).ok()? {
            ScalarValue::Int64(v) => v,
            _ => None,
        },
        ColumnarValue::Array(a) => {
            let ints = datafusion::arrow::compute::cast(a, &DataType::Int64).ok()?;
            ints.as_primitive::<Int64Type>()
                .iter()
                .flatten()
                .fold(None, pick)
        }
    }
}

/// Nanoseconds per unit of a series argument's type.
fn unit_nanos(t: &DataType) -> i64 {
    match t {
        DataType::Date32 => 86_400_000_000_000,
        DataType::Date64 => 1_000_000,
        DataType::Timestamp(TimeUnit::Second, _) => 1_000_000_000,
        DataType::Timestamp(TimeUnit::Millisecond, _) => 1_000_000,
        DataType::Timestamp(TimeUnit::Microsecond, _) => 1_000,
        _ => 1,
    }
}

/// The step of a series in nanoseconds (an interval) or units (a number); 1 when absent.
fn step(v: Option<&ColumnarValue>) -> i64 {
    match v {
        None => 1,
        Some(ColumnarValue::Scalar(ScalarValue::IntervalMonthDayNano(Some(i)))) => {
            let nanos = i64::from(i.months) * 28 * 86_400_000_000_000
                + i64::from(i.days) * 86_400_000_000_000
                + i.nanoseconds;
            nanos.abs().max(1)
        }
        Some(ColumnarValue::Scalar(ScalarValue::IntervalYearMonth(Some(m)))) => {
            (i64::from(*m) * 28 * 86_400_000_000_000).abs().max(1)
        }
        Some(ColumnarValue::Scalar(ScalarValue::IntervalDayTime(Some(d)))) => {
            (i64::from(d.days) * 86_400_000_000_000 + i64::from(d.milliseconds) * 1_000_000)
                .abs()
                .max(1)
        }
        Some(v) => {
            let (lo, hi) = (
                largest(v, true).unwrap_or(1),
                largest(v, false).unwrap_or(1),
            );
            lo.abs().min(hi.abs()).max(1)
        }
    }
}

impl Guarded {
    /// The most bytes the call's output can take.
    fn estimate(&self, args: &ScalarFunctionArgs) -> u64 {
        let a = &args.args;
        let rows = if a.iter().any(|v| matches!(v, ColumnarValue::Array(_))) {
            args.number_rows.max(1) as u64
        } else {
            1
        };
        let count = |i: usize| a.get(i).and_then(|v| largest(v, false)).unwrap_or(0).max(0) as u64;
        let per_row = match self.growth {
            Growth::Repeat => a.first().map_or(0, longest).saturating_mul(count(1)),
            Growth::Pad => count(1).saturating_mul(4),
            Growth::Replace => a
                .first()
                .map_or(0, longest)
                .saturating_add(1)
                .saturating_mul(a.get(2).map_or(0, longest).saturating_add(1)),
            Growth::Series => {
                let (start, stop, step_at) = match a.len() {
                    1 => (Some(0), largest(&a[0], false), None),
                    _ => (largest(&a[0], true), largest(&a[1], false), a.get(2)),
                };
                let scale = a.first().map_or(1, |v| unit_nanos(&v.data_type()));
                let span = i128::from(stop.unwrap_or(0)) - i128::from(start.unwrap_or(0));
                let elements = (span.abs() * i128::from(scale)) / i128::from(step(step_at)) + 1;
                u64::try_from(elements)
                    .unwrap_or(u64::MAX)
                    .saturating_mul(16)
            }
            Growth::Elements => {
                let element = a.first().map_or(16, longest).max(16);
                count(1).saturating_mul(element)
            }
        };
        per_row.saturating_mul(rows)
    }
}

impl ScalarUDFImpl for Guarded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn schema_name(&self, args: &[datafusion::logical_expr::Expr]) -> Result<String> {
        self.inner.schema_name(args)
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs<'_>) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn is_strict(&self) -> bool {
        self.inner.is_strict()
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let estimate = self.estimate(&args);
        let reservation =
            MemoryConsumer::new(format!("{}() output", self.inner.name())).register(&self.pool);
        reservation.try_grow(usize::try_from(estimate).unwrap_or(usize::MAX))?;
        let out = self.inner.invoke_with_args(args);
        drop(reservation);
        out
    }
}
